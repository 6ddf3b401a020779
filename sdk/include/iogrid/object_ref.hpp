// ObjectRef<T>: a reference to a value that exists now or will exist (a task's result, or put()).
// Copying a ref is cheap; the value is freed when no ref, task argument or containing object refers to it.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <vector>

#include "iogrid/core/core.hpp"
#include "iogrid/core/object_entry.hpp"
#include "iogrid/core/wait.hpp"
#include "iogrid/errors.hpp"
#include "iogrid/serialization.hpp"

namespace iogrid {

template <class T>
class ObjectRef {
 public:
  using value_type = T;
  ObjectRef() = default;
  explicit ObjectRef(core::RefHandle h) : h_(std::move(h)) {}

  std::uint64_t id() const { return h_ ? h_->id : 0; }
  bool valid() const { return static_cast<bool>(h_); }
  // True once the value (or its error) exists.
  bool ready() const { return h_ && h_->done(); }
  const core::RefHandle& handle() const { return h_; }
  friend bool operator==(const ObjectRef& a, const ObjectRef& b) { return a.h_.get() == b.h_.get(); }

 private:
  core::RefHandle h_;
};

template <class T>
struct is_object_ref : std::false_type {};
template <class T>
struct is_object_ref<ObjectRef<T>> : std::true_type {};

namespace detail {
inline std::chrono::steady_clock::time_point deadline_after(std::optional<std::chrono::milliseconds> timeout) {
  if (!timeout) return std::chrono::steady_clock::time_point::max();
  return std::chrono::steady_clock::now() + *timeout;
}
template <class T>
core::ObjectEntry* checked_entry(const ObjectRef<T>& r) {
  if (!r.valid()) throw Error("iogrid: get/wait on an empty ObjectRef");
  return r.handle().get();
}
}  // namespace detail

// The value of `ref`, waiting for it as long as needed (or up to `timeout`: GetTimeoutError).
// A failed task throws its error here (TaskError, InfeasibleError, TaskCancelledError, ...).
template <class T>
T get(const ObjectRef<T>& ref, std::optional<std::chrono::milliseconds> timeout = std::nullopt) {
  auto* e = detail::checked_entry(ref);
  if (!e->done() && !core::wait_done(e, detail::deadline_after(timeout)))
    throw GetTimeoutError("iogrid: get timed out after " + std::to_string(timeout->count()) +
                          " ms waiting for object " + std::to_string(e->id));
  if constexpr (std::is_void_v<T>) {
    (void)e->bytes();
  } else {
    return deserialize<T>(e->bytes());
  }
}

template <class T>
std::vector<T> get(const std::vector<ObjectRef<T>>& refs,
                   std::optional<std::chrono::milliseconds> timeout = std::nullopt) {
  auto deadline = detail::deadline_after(timeout);
  std::vector<T> out;
  out.reserve(refs.size());
  for (const auto& r : refs) {
    auto* e = detail::checked_entry(r);
    if (!e->done() && !core::wait_done(e, deadline))
      throw GetTimeoutError("iogrid: get of " + std::to_string(refs.size()) + " objects timed out");
    out.push_back(deserialize<T>(e->bytes()));
  }
  return out;
}

template <class T>
struct WaitResult {
  std::vector<ObjectRef<T>> ready;
  std::vector<ObjectRef<T>> not_ready;
};

// Splits `refs` into (at least `num_ready` of) those done and the rest, waiting up to `timeout`.
// Order within each part follows `refs`.
template <class T>
WaitResult<T> wait(const std::vector<ObjectRef<T>>& refs, std::size_t num_ready = 1,
                   std::optional<std::chrono::milliseconds> timeout = std::nullopt) {
  if (num_ready > refs.size()) num_ready = refs.size();
  std::vector<core::ObjectEntry*> es;
  es.reserve(refs.size());
  for (const auto& r : refs) es.push_back(detail::checked_entry(r));
  auto done = core::wait_entries(es, num_ready, detail::deadline_after(timeout));
  WaitResult<T> res;
  res.ready.reserve(done.size());
  res.not_ready.reserve(refs.size() - done.size());
  std::size_t j = 0;
  for (std::size_t i = 0; i < refs.size(); ++i) {
    if (j < done.size() && done[j] == i) {
      res.ready.push_back(refs[i]);
      ++j;
    } else {
      res.not_ready.push_back(refs[i]);
    }
  }
  return res;
}

// Stores `value` in the object store (one copy) and returns a ref to it.
template <class T>
ObjectRef<std::decay_t<T>> put(const T& value) {
  std::vector<std::shared_ptr<void>> contained;
  auto buf = serialize<std::decay_t<T>>(value, &contained);
  return ObjectRef<std::decay_t<T>>(core::current().put(std::move(buf), std::move(contained)));
}

// Cancels the task producing `ref` if it has not finished: get() then throws TaskCancelledError.
template <class T>
void cancel(const ObjectRef<T>& ref) {
  core::current().cancel(detail::checked_entry(ref));
}

// ObjectRefs inside values (a vector of refs, a struct holding one) travel by id.
template <class T>
struct Codec<ObjectRef<T>> {
  static void write(Writer& w, const ObjectRef<T>& r) {
    if (!w.measuring() && w.contained && r.valid()) w.contained->push_back(core::current().export_ref(r.handle().get()));
    w.write_pod<std::uint64_t>(r.id());
  }
  static ObjectRef<T> read(Reader& rd) {
    auto id = rd.read_pod<std::uint64_t>();
    if (id == 0) return ObjectRef<T>();
    return ObjectRef<T>(core::current().import_ref(id));
  }
};

}  // namespace iogrid
