// Collective groups of 2 to 8 members, each member a thread of this process meeting through a MemoryStore:
// every case runs with Gloo (TCP), the ring (TCP, ring_backend.cpp) and the local backend (shared memory),
// which must behave alike.
#include <catch2/catch.hpp>
#include <sys/socket.h>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <map>
#include <set>
#include <sstream>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "gpu/collective/backend.hpp"

using namespace iogrid::gpu::collective;
using namespace std::chrono_literals;

// Catch2's assertions are not thread-safe (ThreadSanitizer reports them), so members check with this: a failed
// check throws, and `members` rethrows the first member's failure on the test's thread.
#define MEMBER_CHECK(cond)                                                                                    \
  do {                                                                                                        \
    if (!(cond)) throw std::runtime_error("member check failed at line " + std::to_string(__LINE__) + ": " #cond); \
  } while (0)

namespace {

bool near(double got, double want) { return std::abs(got - want) <= 1e-5 * std::max(1.0, std::abs(want)); }

std::unique_ptr<Backend> make(const std::string& kind, Store& store, const std::string& group, int rank, int size,
                              const GroupOptions& o = {}) {
  if (kind == "ring") return make_ring(store, group, rank, size, o);
  return kind == "gloo" ? make_gloo(store, group, rank, size, o) : make_local(store, group, rank, size, o);
}

// Runs fn(backend) on `size` members at once; rethrows the first member's failure.
template <class F>
void members(const std::string& kind, int size, const std::string& group, F fn, GroupOptions o = {}) {
  MemoryStore store;
  std::vector<std::thread> threads;
  std::vector<std::exception_ptr> errors(static_cast<std::size_t>(size));
  for (int r = 0; r < size; ++r)
    threads.emplace_back([&, r] {
      try {
        auto b = kind == "auto" ? make_host(store, group, r, size, o) : make(kind, store, group, r, size, o);
        fn(*b);
      } catch (...) {
        errors[static_cast<std::size_t>(r)] = std::current_exception();
      }
    });
  for (auto& t : threads) t.join();
  for (auto& e : errors)
    if (e) std::rethrow_exception(e);
}

}  // namespace

TEST_CASE("allreduce sum, mean and max agree on every member, 2 to 8 members", "[collective]") {
  const std::string kind = GENERATE("gloo", "local", "ring");
  INFO("backend " << kind);
  for (int size : {2, 3, 4, 8}) {
    members(kind, size, "ar" + std::to_string(size), [size](Backend& b) {
      const int r = b.rank();
      std::vector<float> v(1000);
      for (std::size_t i = 0; i < v.size(); ++i) v[i] = float(r + 1) * float(i % 7);
      b.allreduce(v.data(), v.size(), DType::f32, ReduceOp::sum);
      const float ranks = float(size * (size + 1) / 2);
      for (std::size_t i = 0; i < v.size(); ++i) MEMBER_CHECK(near(v[i], ranks * float(i % 7)));
      std::vector<double> m(10, double(r));
      b.allreduce(m.data(), m.size(), DType::f64, ReduceOp::mean);
      MEMBER_CHECK(near(m[3], double(size - 1) / 2));
      std::vector<std::int64_t> x{r * 10, -r};
      b.allreduce(x.data(), x.size(), DType::i64, ReduceOp::max);
      MEMBER_CHECK(x[0] == (size - 1) * 10);
      MEMBER_CHECK(x[1] == 0);
    });
  }
}

TEST_CASE("broadcast, allgather, reduce-scatter and barrier", "[collective]") {
  const std::string kind = GENERATE("gloo", "local", "ring");
  INFO("backend " << kind);
  members(kind, 4, "misc", [](Backend& b) {
    const int r = b.rank();
    std::vector<std::int32_t> v(5, r == 2 ? 42 : -1);
    b.broadcast(v.data(), v.size(), DType::i32, 2);
    MEMBER_CHECK(v == std::vector<std::int32_t>(5, 42));
    std::vector<float> mine{float(r), float(r) + 0.5f};
    std::vector<float> all(8);
    b.allgather(mine.data(), all.data(), 2, DType::f32);
    for (int k = 0; k < 4; ++k) {
      MEMBER_CHECK(all[static_cast<std::size_t>(2 * k)] == float(k));
      MEMBER_CHECK(all[static_cast<std::size_t>(2 * k + 1)] == float(k) + 0.5f);
    }
    std::vector<double> in(8);
    for (std::size_t i = 0; i < in.size(); ++i) in[i] = double(i) + r;  // sum over members: 4i + 6
    std::vector<double> out(2);
    b.reduce_scatter(in.data(), out.data(), 2, DType::f64, ReduceOp::sum);
    MEMBER_CHECK(near(out[0], 4.0 * (2 * r) + 6));
    MEMBER_CHECK(near(out[1], 4.0 * (2 * r + 1) + 6));
    b.barrier();
    bool refused = false;
    try {
      b.broadcast(v.data(), v.size(), DType::i32, 7);
    } catch (const CollectiveError&) {
      refused = true;
    }
    MEMBER_CHECK(refused);
  });
}

TEST_CASE("a member that dies makes the others fail with a clear error, not hang", "[collective]") {
  const std::string kind = GENERATE("gloo", "local", "ring");
  INFO("backend " << kind);
  GroupOptions o;
  o.timeout = 2000ms;
  std::atomic<int> failed{0};
  std::atomic<long> slowest_ms{0};
  MemoryStore store;
  std::vector<std::thread> threads;
  for (int r = 0; r < 3; ++r)
    threads.emplace_back([&, r] {
      auto b = make(kind, store, "dies", r, 3, o);
      if (r == 1) return;  // rank 1 leaves: its connections close
      std::vector<float> v(1 << 16, 1.0f);
      auto t0 = std::chrono::steady_clock::now();
      try {
        b->allreduce(v.data(), v.size(), DType::f32, ReduceOp::sum);
      } catch (const CollectiveError& e) {
        std::string what = e.what();
        if (what.find("allreduce in group dies") != std::string::npos) ++failed;
      }
      auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
      slowest_ms = std::max<long>(slowest_ms.load(), static_cast<long>(ms));
    });
  for (auto& t : threads) t.join();
  CHECK(failed == 2);
  CHECK(slowest_ms < 5000);
}

TEST_CASE("a member that never arrives fails the rendezvous within the timeout, naming what is missing", "[collective]") {
  const std::string kind = GENERATE("gloo", "local", "auto", "ring");
  INFO("backend " << kind);
  MemoryStore store;
  GroupOptions o;
  o.timeout = 500ms;
  o.host_backend = kind;
  auto t0 = std::chrono::steady_clock::now();
  CHECK_THROWS_WITH(make_host(store, "alone", 0, 2, o), Catch::Contains("group alone") && Catch::Contains("timed out"));
  CHECK(std::chrono::steady_clock::now() - t0 < 5s);
  MemoryStore fresh;  // rank 1 alone: rank 0 never publishes anything
  CHECK_THROWS_WITH(make_host(fresh, "alone", 1, 2, o), Catch::Contains("group alone") && Catch::Contains("timed out"));
  CHECK_THROWS_WITH(make_host(store, "bad", 3, 2, o), Catch::Contains("rank 3 is outside 0..1"));
}

TEST_CASE("auto picks the local backend for members in one process, and local refuses a member elsewhere", "[collective]") {
  std::vector<std::string> names(3);
  members("auto", 3, "pick", [&](Backend& b) {
    names[std::size_t(b.rank())] = b.name();
    std::vector<float> v(100, 1.0f);
    b.allreduce(v.data(), v.size(), DType::f32, ReduceOp::sum);
    MEMBER_CHECK(v[99] == 3.0f);
  });
  CHECK(names == std::vector<std::string>(3, "local"));
  MemoryStore store;
  GroupOptions o;
  o.timeout = 500ms;
  store.set("elsewhere/local", "12345-6789:1");  // rank 0's formation, published by another process
  CHECK_THROWS_WITH(make_local(store, "elsewhere", 1, 2, o), Catch::Contains("needs every member in one process"));
  o.host_backend = "tcp";
  CHECK_THROWS_WITH(make_host(store, "odd", 0, 2, o), Catch::Contains("unknown host backend 'tcp'"));
}

TEST_CASE("local backend: members calling different operations all fail naming both, and every member gets the same bits",
          "[collective]") {
  std::vector<std::string> errors(2);
  MemoryStore store;
  std::vector<std::thread> threads;
  GroupOptions o;
  o.timeout = 2000ms;
  for (int r = 0; r < 2; ++r)
    threads.emplace_back([&, r] {
      auto b = make_local(store, "mismatch", r, 2, o);
      std::vector<float> v(r == 0 ? 10 : 12, 1.0f);
      try {
        b->allreduce(v.data(), v.size(), DType::f32, ReduceOp::sum);
      } catch (const CollectiveError& e) {
        errors[std::size_t(r)] = e.what();
      }
    });
  for (auto& t : threads) t.join();
  for (const auto& e : errors) {
    CHECK_THAT(e, Catch::Contains("allreduce of 10 f32") && Catch::Contains("allreduce of 12 f32"));
  }
  // Sums of values that round differently in different orders: every member gets the very same bits.
  std::vector<std::vector<float>> got(4);
  members("local", 4, "bits", [&](Backend& b) {
    std::vector<float> v(50000);
    for (std::size_t i = 0; i < v.size(); ++i) v[i] = 1.0f / float(1 + (i * 7 + std::size_t(b.rank()) * 13) % 1000);
    b.allreduce(v.data(), v.size(), DType::f32, ReduceOp::mean);
    got[std::size_t(b.rank())] = v;
  });
  for (int r = 1; r < 4; ++r) CHECK(got[std::size_t(r)] == got[0]);
}

TEST_CASE("ring: members that cannot dial each other meet through GroupOptions::meet, and the links say so", "[collective]") {
  // Every member publishes an address nobody answers at (TEST-NET-1): each direct dial fails, and both ends
  // of each link call `meet` with the same name; here a socket pair, made by whichever end comes first (in a
  // cluster: the head's relay, runtime/transport/punch.hpp).
  std::mutex m;
  std::map<std::string, int> waiting;
  int meetings = 0;
  GroupOptions o;
  o.timeout = 10s;
  o.host = "192.0.2.1";
  o.host_backend = "ring";
  // Each member's own relay (its thread's here): both ends of a link must meet at the same one, the dialler's.
  std::set<std::string> places;
  std::map<std::string, std::string> place_of;
  int mismatched = 0;
  o.meet_place = [] {
    std::ostringstream id;
    id << "relay-" << std::this_thread::get_id() << ":9000";
    return id.str();
  };
  o.meet = [&](const std::string& name, const std::string& place, std::string* path) {
    std::lock_guard<std::mutex> g(m);
    places.insert(place);
    *path = "relayed";
    if (auto it = waiting.find(name); it != waiting.end()) {
      const int fd = it->second;
      waiting.erase(it);
      ++meetings;
      mismatched += place_of[name] != place;
      return fd;
    }
    place_of[name] = place;
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) return -1;
    waiting[name] = sv[1];
    return sv[0];
  };
  std::vector<std::string> links(3);
  members("auto", 3, "hidden", [&](Backend& b) {
    links[std::size_t(b.rank())] = b.links();
    std::vector<double> v(100000, double(b.rank() + 1));
    b.allreduce(v.data(), v.size(), DType::f64, ReduceOp::sum);
    MEMBER_CHECK(v.front() == 6.0 && v.back() == 6.0);
    MEMBER_CHECK(std::string(b.name()) == "ring");
  }, o);
  CHECK(meetings == 3);
  CHECK(mismatched == 0);
  CHECK(places.size() == 3);
  CHECK(links == std::vector<std::string>(3, "0>1 relayed, 1>2 relayed, 2>0 relayed"));
}

TEST_CASE("members that can all dial each other are told so, and one that cannot be dialled makes every member's answer no",
          "[collective]") {
  for (const bool hidden : {false, true}) {
    MemoryStore store;
    std::vector<int> answers(3, -1);
    std::vector<std::thread> threads;
    for (int r = 0; r < 3; ++r)
      threads.emplace_back([&, r] {
        GroupOptions o;
        o.timeout = 10s;
        if (hidden && r == 2) o.host = "192.0.2.1";  // TEST-NET-1: nobody answers there (a member behind a NAT)
        answers[std::size_t(r)] = members_dial_each_other(store, "probe", r, 3, o) ? 1 : 0;
      });
    for (auto& t : threads) t.join();
    INFO("member 2 hidden: " << hidden);
    CHECK(answers == std::vector<int>(3, hidden ? 0 : 1));
  }
}
