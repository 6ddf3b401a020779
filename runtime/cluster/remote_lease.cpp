#include "runtime/cluster/remote_lease.hpp"

#include <algorithm>

#include "runtime/cluster/wire_task.hpp"
#include "runtime/shape_queue.hpp"

namespace iogrid::runtime::cluster {

RemoteLease::RemoteLease(caf::actor endpoint, transport::ConnId conn, std::shared_ptr<worker::WorkSource> src,
                         worker::WorkerContext ctx, std::uint64_t lease_id, std::size_t window, Locate locate)
    : ep_(std::move(endpoint)), conn_(conn), src_(std::move(src)), ctx_(std::move(ctx)), lease_id_(lease_id),
      window_(window), locate_(std::move(locate)) {}

RemoteLease::~RemoteLease() {
  lost("the owner is shutting down");
  if (thread_.joinable()) thread_.join();
}

void RemoteLease::start() { thread_ = std::thread([this] { loop(); }); }

bool RemoteLease::finished() const {
  std::lock_guard<std::mutex> g(m_);
  return finished_;
}

void RemoteLease::yield() {
  if (!dynamic_cast<ShapeQueue*>(src_.get())) return;
  {
    std::lock_guard<std::mutex> g(m_);
    yield_ = true;
  }
}

std::size_t RemoteLease::allowed_locked() const {
  constexpr double kBufferedUs = 2000;
  if (avg_task_us_ < 0) return 1;
  auto n = static_cast<std::size_t>(kBufferedUs / std::max(avg_task_us_, 1.0));
  return std::clamp<std::size_t>(n, 1, window_);
}

void RemoteLease::loop() {
  bool ran_dry = false;
  for (;;) {
    {
      std::unique_lock<std::mutex> g(m_);
      cv_.wait(g, [this] { return inflight_.size() < allowed_locked() || lost_; });
      // Checked once per task sent or result back: a yield takes effect at the first task boundary past
      // kMinServed.
      if (lost_ || (yield_ && std::chrono::steady_clock::now() - attached_ >= kMinServed)) break;
    }
    auto* spec = src_->next(ctx_);
    if (!spec) {
      ran_dry = true;
      break;
    }
    std::uint64_t id;
    {
      std::unique_lock<std::mutex> g(m_);
      if (lost_) {
        auto why = lost_why_;
        g.unlock();
        src_->lost(spec, ctx_, why);
        break;
      }
      id = ++next_task_;
      inflight_[id] = InFlight{spec, std::chrono::steady_clock::now()};
    }
    // An argument lost with its node is being rebuilt: send this task once it is back.
    std::shared_ptr<RemoteObject> rebuilding;
    for (const auto& d : spec->deps)
      if (auto r = std::dynamic_pointer_cast<RemoteObject>(d->store); r && r->rebuilding()) rebuilding = r;
    if (rebuilding) {
      {
        std::lock_guard<std::mutex> g(m_);
        inflight_.erase(id);
      }
      cv_.notify_one();
      rebuilding->when_available([src = src_, spec, ctx = ctx_] { src->requeue(spec, ctx); });
      continue;
    }
    capnp::MallocMessageBuilder msg;
    auto tasks = msg.initRoot<proto::Envelope>().initTasks().initTasks(1);
    try {
      write_task(tasks[0], *spec, id, locate_);
    } catch (const std::exception& e) {  // an argument's value could not be read (its object was lost)
      {
        std::lock_guard<std::mutex> g(m_);
        inflight_.erase(id);
      }
      worker::Outcome failed;
      failed.failed = true;
      failed.error = e.what();
      src_->finish(spec, std::move(failed), ctx_);
      continue;
    }
    transport::post_frame(ep_, conn_, transport::encode_frame(msg));
  }
  // Wait for what is in flight, then end the lease.
  std::map<std::uint64_t, InFlight> orphans;
  std::string why;
  {
    std::unique_lock<std::mutex> g(m_);
    cv_.wait(g, [this] { return inflight_.empty() || lost_; });
    orphans.swap(inflight_);
    why = lost_why_;
  }
  for (auto& [id, f] : orphans) src_->lost(f.spec, ctx_, why);
  bool was_lost;
  {
    std::lock_guard<std::mutex> g(m_);
    was_lost = lost_;
  }
  if (!was_lost) {
    capnp::MallocMessageBuilder msg;
    msg.initRoot<proto::Envelope>().initEndLease().setLeaseId(lease_id_);
    transport::post_frame(ep_, conn_, transport::encode_frame(msg));
  }
  if (!ran_dry) src_->lease_abandoned(ctx_);
  src_->lease_ended(ctx_);
  std::lock_guard<std::mutex> g(m_);
  finished_ = true;
}

void RemoteLease::on_results(proto::Results::Reader results) {
  for (auto r : results.getResults()) {
    core::TaskSpec* spec = nullptr;
    {
      std::lock_guard<std::mutex> g(m_);
      auto it = inflight_.find(r.getTaskId());
      if (it == inflight_.end()) continue;
      spec = it->second.spec;
      auto now = std::chrono::steady_clock::now();
      auto began = std::max(it->second.sent, last_result_);
      double us = std::chrono::duration<double, std::micro>(now - began).count();
      avg_task_us_ = avg_task_us_ < 0 ? us : 0.8 * avg_task_us_ + 0.2 * us;
      last_result_ = now;
      inflight_.erase(it);
    }
    auto out = read_result(r);
    if (out.lost_dep) {
      // The worker could not pull an argument: its node died. Rebuild it, then run this task again.
      auto obj = std::static_pointer_cast<RemoteObject>(out.lost_dep);
      obj->mark_lost(out.error);
      obj->when_available([src = src_, spec, ctx = ctx_] { src->requeue(spec, ctx); });
    } else {
      src_->finish(spec, std::move(out), ctx_);
    }
    cv_.notify_one();
  }
}

void RemoteLease::lost(const std::string& why) {
  {
    std::lock_guard<std::mutex> g(m_);
    if (lost_ || finished_) return;
    lost_ = true;
    lost_why_ = why;
  }
  cv_.notify_all();
  src_->lease_lost(ctx_, why);
}

}  // namespace iogrid::runtime::cluster
