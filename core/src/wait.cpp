#include "iogrid/core/wait.hpp"

#include <mutex>

#include "iogrid/core/spin.hpp"

namespace iogrid::core {

namespace {
thread_local BlockingObserver* t_observer = nullptr;
thread_local InlineRunner* t_runner = nullptr;

// Runs producers of not-yet-done entries on this thread while the runtime offers to; true when it ran any.
bool run_producers_inline(ObjectEntry* e) {
  bool ran = false;
  while (t_runner && !e->done() && t_runner->run_inline(e)) ran = true;
  return ran;
}
struct BlockedScope {
  BlockedScope() {
    if (t_observer) t_observer->blocked();
  }
  ~BlockedScope() {
    if (t_observer) t_observer->unblocked();
  }
};
}  // namespace

void set_blocking_observer(BlockingObserver* o) { t_observer = o; }
void set_inline_runner(InlineRunner* r) { t_runner = r; }


bool wait_done(ObjectEntry* e, std::chrono::steady_clock::time_point deadline) {
  if (e->done()) return true;
  if (run_producers_inline(e) && e->done()) return true;
  if (spin_for([e] { return e->done(); }, kWaiterSpin, deadline)) return true;
  Waiter w;
  if (!e->add_waiter(&w)) return true;
  BlockedScope blocked;
  {
    std::unique_lock<std::mutex> g(w.mutex);
    if (deadline == std::chrono::steady_clock::time_point::max()) w.cv.wait(g, [&] { return w.signalled; });
    else w.cv.wait_until(g, deadline, [&] { return w.signalled; });
  }
  e->remove_waiter(&w);
  return e->done();
}

std::vector<std::size_t> wait_entries(const std::vector<ObjectEntry*>& entries, std::size_t k,
                                      std::chrono::steady_clock::time_point deadline) {
  auto collect = [&](std::vector<std::size_t>& out) {
    out.clear();
    for (std::size_t i = 0; i < entries.size(); ++i)
      if (entries[i]->done()) out.push_back(i);
    return out.size() >= k;
  };
  std::vector<std::size_t> done;
  if (collect(done) || k == 0) return done;
  if (t_runner) {
    for (auto* e : entries)
      if (!e->done() && run_producers_inline(e) && collect(done)) return done;
  }
  // Cheap poll: count done entries without building the list.
  auto enough = [&] {
    std::size_t n = 0;
    for (auto* e : entries)
      if (e->done() && ++n >= k) return true;
    return false;
  };
  if (spin_for(enough, kWaiterSpin, deadline)) {
    collect(done);
    return done;
  }
  Waiter w;
  BlockedScope blocked;
  std::vector<ObjectEntry*> parked;
  for (auto* e : entries)
    if (e->add_waiter(&w)) parked.push_back(e);
  while (!collect(done)) {
    std::unique_lock<std::mutex> g(w.mutex);
    if (deadline == std::chrono::steady_clock::time_point::max()) w.cv.wait(g, [&] { return w.signalled; });
    else if (!w.cv.wait_until(g, deadline, [&] { return w.signalled; })) break;
    w.signalled = false;
  }
  for (auto* e : parked) e->remove_waiter(&w);
  collect(done);
  return done;
}

}  // namespace iogrid::core
