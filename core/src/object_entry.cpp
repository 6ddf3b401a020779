#include "iogrid/core/object_entry.hpp"

#include <algorithm>
#include <thread>

#include "iogrid/core/errors.hpp"

namespace iogrid::core {

[[noreturn]] void throw_error(const ErrorInfo& e) {
  switch (e.kind) {
    case ErrorKind::task_failed:
      throw TaskError(e.task_name, e.node, e.message, e.through);
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

std::shared_ptr<const ErrorInfo> passed_through(const std::shared_ptr<const ErrorInfo>& e) {
  if (!e || e->kind != ErrorKind::task_failed) return e;
  auto next = std::make_shared<ErrorInfo>(*e);
  ++next->through;
  return next;
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

}  // namespace iogrid::core
