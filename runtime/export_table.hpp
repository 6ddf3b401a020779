// ExportTable: the entries of ObjectRefs serialised inside values, by id, so that deserialising the value
// finds the same entry again. A token returned by export_ref keeps its entry alive (and listed) while the
// value holding it lives; the token's pointer is the entry itself.
// In cluster mode entries that arrive from another process are listed here under the id they were sent
// with (ids are unique across processes there: each process tags its ids).
#pragma once

#include <memory>
#include <mutex>
#include <unordered_map>

#include "iogrid/core/object_entry.hpp"
#include "iogrid/core/errors.hpp"
#include "runtime/transport/auth.hpp"

namespace iogrid::runtime {

class ExportTable {
 public:
  std::shared_ptr<void> export_ref(core::ObjectEntry* e) {
    {
      std::lock_guard<std::mutex> g(m_);
      auto& slot = table_[e->id];
      slot.first = e;
      ++slot.second;
    }
    auto h = core::RefHandle::share(e);
    auto id = e->id;
    return std::shared_ptr<void>(e, [this, h = std::move(h), id](void*) mutable {
      {
        std::lock_guard<std::mutex> g(m_);
        auto it = table_.find(id);
        if (it != table_.end() && --it->second.second == 0) table_.erase(it);
      }
      h.reset();
    });
  }
  core::RefHandle import_ref(std::uint64_t id) {
    std::lock_guard<std::mutex> g(m_);
    auto it = table_.find(id);
    if (it == table_.end())
      throw core::Error("iogrid: object " + std::to_string(id) + " referenced inside a value no longer exists");
    return core::RefHandle::share(it->second.first);
  }

 private:
  std::mutex m_;
  std::unordered_map<std::uint64_t, std::pair<core::ObjectEntry*, int>> table_;
};

// A random id base for one owner in a cluster-mode process: (nonzero 23-bit tag) << 40.
inline std::uint64_t fresh_id_base() {
  auto r = transport::random_bytes(4);
  std::uint64_t v = (std::uint64_t(std::uint8_t(r[0])) | std::uint64_t(std::uint8_t(r[1])) << 8 |
                     std::uint64_t(std::uint8_t(r[2])) << 16) & 0x7fffff;
  return (v == 0 ? 1 : v) << 40;
}

// The table of a cluster-mode process (never destroyed: tokens may outlive any runtime object).
inline ExportTable& process_export_table() {
  static auto* t = new ExportTable();
  return *t;
}

}  // namespace iogrid::runtime
