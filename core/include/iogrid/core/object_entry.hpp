// ObjectEntry: the owner's record of one object (a task's result or a put value).
// Invariants:
// - `state` moves once, from pending to ready or failed, and never back; everything written before
//   that move (value, location, error) is visible to whoever observes the new state (release/acquire).
// - the entry is reference counted by RefHandles (ObjectRef copies, task arguments in flight, containing
//   objects); when the count reaches zero, the object's bytes are freed wherever they live.
// - small values live inline in the entry; large values live in a node's object store (`store`).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "iogrid/core/buffer.hpp"

namespace iogrid::core {

enum class ObjectState : std::uint8_t { pending = 0, ready = 1, failed = 2 };

enum class ErrorKind : std::uint8_t {
  task_failed,
  infeasible,
  cancelled,
  actor_died,
  store_full,
  runtime_stopped,
  object_lost,
};

struct ErrorInfo {
  ErrorKind kind = ErrorKind::task_failed;
  std::string task_name;   // task_failed: the root task (the one that threw first)
  std::string node;        // where it ran; empty: it never reached one
  std::string message;
  std::uint32_t through = 0;  // task_failed: tasks the failure passed through (see TaskError)
};

// The failure of `e` as seen by a task that depended on the failed one: the same root, one more step.
std::shared_ptr<const ErrorInfo> passed_through(const std::shared_ptr<const ErrorInfo>& e);

// [[noreturn]] throw of the iogrid exception matching `e`.
[[noreturn]] void throw_error(const ErrorInfo& e);

// Where large objects live: a node's object store. Implemented by the runtime.
class ObjectSource {
 public:
  virtual ~ObjectSource() = default;
  virtual BufferPtr fetch(std::uint64_t id) = 0;  // throws iogrid::Error when gone
  virtual void erase(std::uint64_t id) = 0;
  virtual const std::string& node_name() const = 0;
};

// A waiter parked on one or more entries (get / wait). Signalled when any of them completes.
struct Waiter {
  std::mutex mutex;
  std::condition_variable cv;
  bool signalled = false;
  void signal() {
    {
      std::lock_guard<std::mutex> g(mutex);
      signalled = true;
    }
    cv.notify_all();
  }
};

class ObjectEntry;
void release_entry(ObjectEntry* e) noexcept;

class ObjectEntry {
 public:
  explicit ObjectEntry(std::uint64_t id_) : id(id_) { live_entries.fetch_add(1, std::memory_order_relaxed); }
  ~ObjectEntry() { live_entries.fetch_sub(1, std::memory_order_relaxed); }
  ObjectEntry(const ObjectEntry&) = delete;
  ObjectEntry& operator=(const ObjectEntry&) = delete;

  const std::uint64_t id;
  std::atomic<std::uint32_t> refs{1};
  std::atomic<ObjectState> state{ObjectState::pending};

  // Written once before `state` leaves pending.
  BufferPtr value;                       // inline value (small objects), null when in a store
  std::shared_ptr<ObjectSource> store;   // where a large value lives
  std::shared_ptr<const ErrorInfo> error;
  std::vector<std::shared_ptr<void>> contained;  // objects referenced from inside this value
  std::size_t size = 0;

  bool done() const { return state.load(std::memory_order_acquire) != ObjectState::pending; }
  bool ready() const { return state.load(std::memory_order_acquire) == ObjectState::ready; }

  // Bytes of a ready value (inline, or fetched from its store). Throws on a failed entry.
  BufferPtr bytes() const {
    auto s = state.load(std::memory_order_acquire);
    if (s == ObjectState::failed) throw_error(*error);
    if (value) return value;
    return store->fetch(id);
  }

  // Completion: the first call wins and returns true; later calls (a cancelled task finishing) return false.
  bool complete_value(BufferPtr v, std::shared_ptr<ObjectSource> src, std::size_t sz,
                      std::vector<std::shared_ptr<void>> contained_refs = {});
  bool complete_error(std::shared_ptr<const ErrorInfo> e);

  // Runs `fn` once the entry is done: now (in this thread) if it already is, else in the completing thread.
  void on_done(std::function<void()> fn);
  // Adds/removes a parked waiter; add returns false if the entry is already done.
  bool add_waiter(Waiter* w);
  void remove_waiter(Waiter* w);

  static inline std::atomic<std::int64_t> live_entries{0};

 private:
  void finish_();
  std::mutex lock_;
  std::vector<std::function<void()>> callbacks_;
  std::vector<Waiter*> waiters_;
};

// An owning, counted reference to an entry.
class RefHandle {
 public:
  RefHandle() = default;
  // Adopts one reference already counted in `e`.
  static RefHandle adopt(ObjectEntry* e) {
    RefHandle h;
    h.e_ = e;
    return h;
  }
  // Takes a new reference.
  static RefHandle share(ObjectEntry* e) {
    if (e) e->refs.fetch_add(1, std::memory_order_relaxed);
    return adopt(e);
  }
  RefHandle(const RefHandle& o) : e_(o.e_) {
    if (e_) e_->refs.fetch_add(1, std::memory_order_relaxed);
  }
  RefHandle(RefHandle&& o) noexcept : e_(o.e_) { o.e_ = nullptr; }
  RefHandle& operator=(RefHandle o) noexcept {
    std::swap(e_, o.e_);
    return *this;
  }
  ~RefHandle() { reset(); }
  void reset() noexcept {
    if (e_) {
      release_entry(e_);
      e_ = nullptr;
    }
  }
  ObjectEntry* get() const { return e_; }
  ObjectEntry* operator->() const { return e_; }
  explicit operator bool() const { return e_ != nullptr; }

 private:
  ObjectEntry* e_ = nullptr;
};

}  // namespace iogrid::core
