// A task report as any connected owner may send it (TaskReport JSON, runtime/head/task_book.hpp): the head keeps
// what is well formed, refuses the rest, and answers summaries and details from what it kept.
#include <string>

#include "fuzz.hpp"
#include "runtime/head/task_book.hpp"

namespace {

std::vector<std::string> seeds() {
  return {R"({"tasks":{"task":{"submitted":3,"waiting":1,"running":1,"finished":1,"failed":0}},"duration_buckets":[0.01,0.1],)"
          R"("duration_counts":[1,0,0],"duration_sum_s":0.004,"spans":[["f","n1",1,5,true,0]],)"
          R"("failures":[{"ts_ms":5,"name":"g","node":"n1","error":"boom","root_task":""}]})",
          R"({"tasks":{},"actors":[[1,"Tally","alive","n1",0,"",7],[2,"M","dead","",3,"killed",9]],)"
          R"("actor_states":{"alive":1,"dead":1}})",
          R"({"tasks":{},"actors":[[-1,"x","alive","",0,"",1],[1,2,3],{"a":1}],"actor_states":{"dead":-4}})",
          R"({"tasks":{"task":5,"actor_call":{"finished":-1}},"spans":{"a":1},"failures":"x"})",
          R"({"tasks":{},"duration_buckets":[1e308,-1],"duration_counts":[18446744073709551615,1],"duration_sum_s":"x"})",
          "[]", "null", "{"};
}

}  // namespace

IOGRID_FUZZ_TARGET(task_report, seeds) {
  static iogrid::runtime::head::TaskBook book;
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    book.report("job-" + std::to_string(size % 3), size % 5, text);
  } catch (const std::exception&) {
    // refused: nothing kept
  }
  (void)book.summary("job-0");
  (void)book.detail("job-1", 3, 10).dump();
  (void)book.summaries();
  (void)book.actors("", size % 2 ? "dead" : "", size % 3 ? "" : "a", size % 4, 1 + size % 7).dump();
  return 0;
}
