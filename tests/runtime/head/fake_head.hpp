// A head core with a hand-driven clock and a shell that records what the core asks of it, for the head's
// unit tests: no actors, no sockets, no sleeps.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "runtime/head/head_core.hpp"
#include "../../scheduler/nodes.hpp"

namespace iogrid::test {

namespace head = runtime::head;

struct FakeClock {
  head::Clock::time_point t = head::Clock::time_point{} + std::chrono::hours(1000);
  std::int64_t unix_ms = 1'800'000'000'000;
  void advance(std::chrono::milliseconds d) {
    t += d;
    unix_ms += d.count();
  }
  head::HeadClock clock() {
    return head::HeadClock{[this] { return t; }, [this] { return unix_ms; }};
  }
};

// Every HeadEvents call, in order.
struct Recorder final : head::HeadEvents {
  struct Refusal {
    head::OwnerId owner;
    std::uint64_t owner_lease;
    std::string reason;
    head::LeaseRefusal why;
  };
  struct Grant {  // a LeaseGrant kept beyond the call
    std::uint64_t lease, owner, owner_lease;
    std::string job;
    sched::Allocation alloc;
  };
  struct Started {
    std::uint32_t node;
    Grant grant;
  };
  std::vector<Started> started;
  std::vector<Refusal> refused;
  std::vector<std::string> deaths;                             // "name: why"
  std::vector<std::pair<std::string, std::vector<head::OwnerId>>> ended;  // job, owners told
  std::vector<std::pair<std::uint32_t, std::string>> dropped;
  std::vector<head::Challenge> challenges;
  std::vector<std::pair<std::uint64_t, std::vector<int>>> rows_asked;
  std::vector<std::string> answers;
  std::vector<std::pair<head::OwnerId, std::uint64_t>> yields;  // owner, owner_lease

  void start_lease(std::uint32_t node, const head::LeaseGrant& g) override {
    started.push_back({node, Grant{g.lease, g.owner, g.owner_lease, std::string(g.job), g.alloc}});
  }
  void refuse_lease(head::OwnerId o, std::uint64_t l, const std::string& reason, head::LeaseRefusal why) override {
    refused.push_back({o, l, reason, why});
  }
  void yield_lease(head::OwnerId o, std::uint64_t l) override { yields.emplace_back(o, l); }
  void node_died(std::uint32_t, const std::string& name, const std::string& why, const std::vector<head::OwnerId>&) override {
    deaths.push_back(name + ": " + why);
  }
  void job_ended(const std::string& job, const std::string&, const std::vector<head::OwnerId>& owners) override {
    ended.emplace_back(job, owners);
  }
  void drop_node(std::uint32_t node, const std::string& why) override { dropped.emplace_back(node, why); }
  void send_challenge(std::uint32_t, const head::Challenge& c) override { challenges.push_back(c); }
  void send_rows_to_open(std::uint32_t, std::uint64_t id, const std::vector<int>& rows) override { rows_asked.emplace_back(id, rows); }
  void admin_answer(head::OwnerId, std::uint64_t, bool ok, const std::string& body) override {
    answers.push_back((ok ? "ok " : "error ") + body);
  }
};

struct FakeHead {
  FakeClock time;
  Recorder events;
  std::unique_ptr<head::HeadCore> core;

  explicit FakeHead(head::HeadConfig config = {}) { start(std::move(config)); }
  void start(head::HeadConfig config) {
    core.reset();
    std::uint64_t seed = 42;
    core = std::make_unique<head::HeadCore>(std::move(config), events, time.clock(), [seed]() mutable { return ++seed; });
  }

  // A node daemon (heartbeats) or an in-process node; returns its index.
  std::uint32_t node(sched::Node n, head::Liveness l = head::Liveness::heartbeats) {
    head::Join j;
    j.node = std::move(n);
    j.host = "10.0.0.1";
    j.liveness = l;
    auto joined = core->join(std::move(j));
    core->admit(joined.index);
    return joined.index;
  }
  // A driver registering a new job under owner id `owner`; returns the job id.
  std::string driver(head::OwnerId owner, const std::string& user = "") {
    head::Registration r;
    r.driver = "driver-" + std::to_string(owner) + "@10.0.0.9";
    r.code_hash = "abc";
    r.owner_host = "10.0.0.9";
    r.owner_port = 4000;
    r.user = user;
    return core->register_owner(owner, r).job;
  }
  static sched::ResourceRequest gpus(double n, int cpus = 1) {
    sched::ResourceRequest r;
    r.cpus = cpus * sched::kOne;
    r.gpus = sched::to_milli(n);
    return r;
  }
  static sched::ResourceRequest cpus(int n) {
    sched::ResourceRequest r;
    r.cpus = n * sched::kOne;
    return r;
  }
  // The clock advancing `d` with the head checking every 100 ms, as its shell ticks it.
  void run_for(std::chrono::milliseconds d) {
    for (auto t = std::chrono::milliseconds(0); t < d; t += std::chrono::milliseconds(100)) {
      time.advance(std::chrono::milliseconds(100));
      core->tick();
    }
  }
  double reputation(std::uint32_t node) const { return core->scheduler().cluster().node(node).reputation; }
  bool alive(std::uint32_t node) const { return core->scheduler().cluster().node(node).alive; }
};

}  // namespace iogrid::test
