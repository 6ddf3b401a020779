#include "iogrid/detail/object_entry.hpp"

#include <algorithm>
#include <thread>

#include "iogrid/detail/core.hpp"
#include "iogrid/detail/spin.hpp"
#include "iogrid/errors.hpp"


namespace iogrid::detail {

[[noreturn]] void throw_error(const ErrorInfo& e) {
  switch (e.kind) {
    case ErrorKind::task_failed:
      throw TaskError(e.task_name, e.node, e.message);
    case ErrorKind::infeasible:
      throw InfeasibleError(e.message);
    case ErrorKind::cancelled:
      throw TaskCancelledError(e.message);
    case ErrorKind::actor_died:
      throw ActorDiedError(e.message);
    case ErrorKind::store_full:
      throw ObjectStoreFullError(e.message);
    case ErrorKind::runtime_stopped:
      throw RuntimeError(e.message);
    case ErrorKind::object_lost:
      break;
  }
  throw Error(e.message);
}

bool ObjectEntry::complete_value(BufferPtr v, std::shared_ptr<ObjectSource> src, std::size_t sz,
                                 std::vector<std::shared_ptr<void>> contained_refs) {
  {
    std::lock_guard<std::mutex> g(lock_);
    if (state.load(std::memory_order_relaxed) != ObjectState::pending) return false;
    value = std::move(v);
    store = std::move(src);
    size = sz;
    contained = std::move(contained_refs);
    state.store(ObjectState::ready, std::memory_order_release);
  }
  finish_();
  return true;
}

bool ObjectEntry::complete_error(std::shared_ptr<const ErrorInfo> e) {
  {
    std::lock_guard<std::mutex> g(lock_);
    if (state.load(std::memory_order_relaxed) != ObjectState::pending) return false;
    error = std::move(e);
    state.store(ObjectState::failed, std::memory_order_release);
  }
  finish_();
  return true;
}

void ObjectEntry::finish_() {
  std::vector<std::function<void()>> cbs;
  {
    // Waiters are signalled under the entry's lock: once remove_waiter() has returned, no completion can
    // touch that waiter any more (it lives on the waiting thread's stack).
    std::lock_guard<std::mutex> g(lock_);
    cbs.swap(callbacks_);
    for (auto* w : waiters_) w->signal();
    waiters_.clear();
  }
  for (auto& cb : cbs) cb();
}

void ObjectEntry::on_done(std::function<void()> fn) {
  {
    std::lock_guard<std::mutex> g(lock_);
    if (state.load(std::memory_order_relaxed) == ObjectState::pending) {
      callbacks_.push_back(std::move(fn));
      return;
    }
  }
  fn();
}

bool ObjectEntry::add_waiter(Waiter* w) {
  std::lock_guard<std::mutex> g(lock_);
  if (state.load(std::memory_order_relaxed) != ObjectState::pending) return false;
  waiters_.push_back(w);
  return true;
}

void ObjectEntry::remove_waiter(Waiter* w) {
  std::lock_guard<std::mutex> g(lock_);
  waiters_.erase(std::remove(waiters_.begin(), waiters_.end(), w), waiters_.end());
}

void release_entry(ObjectEntry* e) noexcept {
  if (e->refs.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
  if (e->store) {
    try {
      e->store->erase(e->id);
    } catch (...) {
    }
  }
  delete e;
}

namespace {
thread_local BlockingObserver* t_observer = nullptr;
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


bool wait_done(ObjectEntry* e, std::chrono::steady_clock::time_point deadline) {
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

namespace {
std::atomic<Core*> g_core{nullptr};
}

Core& core() {
  auto* c = g_core.load(std::memory_order_acquire);
  if (!c) throw RuntimeError("iogrid: the runtime is not running; call iogrid::init() first");
  return *c;
}
bool core_running() { return g_core.load(std::memory_order_acquire) != nullptr; }
void set_core(Core* c) { g_core.store(c, std::memory_order_release); }

}  // namespace iogrid::detail
