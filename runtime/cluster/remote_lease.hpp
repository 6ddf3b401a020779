// RemoteLease: the owner's side of one lease on a worker process in another process or machine. A thread
// takes specs from the lease's WorkSource (a job's shape queue or an actor's mailbox) exactly as an embedded
// worker would, sends them to the worker process and completes them when results come back.
// How many specs are in flight adapts to how long tasks take: enough to keep about 2 ms of work queued at the
// worker (so short tasks do not wait a network round trip each), never more than `window`, and one at a time
// for long tasks (so a burst of long tasks spreads over many leases instead of queueing behind one).
// Rules: results arrive in the order the specs were sent; when the connection is lost every spec in flight
// goes back to its WorkSource through lost() (retried or failed there) and the lease ends.
#pragma once

#include <condition_variable>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <thread>

#include "runtime/cluster/wire_task.hpp"
#include "runtime/transport/endpoint.hpp"
#include "worker/work_source.hpp"

namespace iogrid::runtime::cluster {

class RemoteLease {
 public:
  RemoteLease(caf::actor endpoint, transport::ConnId conn, std::shared_ptr<worker::WorkSource> src,
              worker::WorkerContext ctx, std::uint64_t lease_id, std::size_t window, Locate locate);
  ~RemoteLease();  // joins the thread

  void start();
  // Broker thread: a batch of results from the worker.
  void on_results(proto::Results::Reader results);
  // Broker thread (or shutdown): the connection is gone.
  void lost(const std::string& why);
  bool finished() const;
  // The head asks this lease to end for fair share: once it has served kMinServed since its worker attached
  // (a worker slow to start still gets its turn), no task is sent after the ones in flight, the lease ends
  // and the queue asks for another if work is left. Only a job's task queue yields (an actor's lease holds
  // the actor).
  static constexpr std::chrono::milliseconds kMinServed{1000};
  void yield();
  std::uint64_t lease_id() const { return lease_id_; }

  transport::ConnId conn() const { return conn_; }
  std::uint32_t node_index() const { return ctx_.node_index; }

 private:
  void loop();
  caf::actor ep_;
  transport::ConnId conn_;
  std::shared_ptr<worker::WorkSource> src_;
  worker::WorkerContext ctx_;
  std::uint64_t lease_id_;
  std::size_t window_;
  Locate locate_;
  mutable std::mutex m_;
  std::condition_variable cv_;
  std::size_t allowed_locked() const;
  struct InFlight {
    core::TaskSpec* spec;
    std::chrono::steady_clock::time_point sent;
  };
  std::map<std::uint64_t, InFlight> inflight_;
  double avg_task_us_ = -1;  // moving average of the worker's time per task; < 0: none seen yet
  std::chrono::steady_clock::time_point last_result_{};
  std::uint64_t next_task_ = 0;
  bool lost_ = false;
  bool yield_ = false;
  const std::chrono::steady_clock::time_point attached_ = std::chrono::steady_clock::now();
  std::string lost_why_;
  bool finished_ = false;
  std::thread thread_;
};

}  // namespace iogrid::runtime::cluster
