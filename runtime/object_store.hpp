// ObjectStore: one node's store for large objects (small ones live inline in their entries).
// Rules: `used` never exceeds `capacity`; when a put would exceed it, the least recently used objects
// that no reader holds are spilled to files under the spill folder until the new object fits; if they
// cannot make room (the object alone is larger than the store, or everything is pinned by readers) the
// put fails with ObjectStoreFullError saying the sizes. A get of a spilled object restores it.
#pragma once

#include <cstdint>
#include <filesystem>
#include <mutex>
#include <string>
#include <unordered_map>

#include "iogrid/core/object_entry.hpp"

namespace iogrid::runtime {

struct StoreStats {
  std::int64_t used_bytes = 0;
  std::int64_t capacity_bytes = 0;
  std::int64_t spilled_bytes = 0;
  std::int64_t num_objects = 0;
  std::int64_t spills = 0;
  std::int64_t restores = 0;
};

class ObjectStore final : public core::ObjectSource {
 public:
  ObjectStore(std::string node_name, std::int64_t capacity_bytes, std::filesystem::path spill_dir);
  ~ObjectStore() override;

  void put(std::uint64_t id, core::BufferPtr data);
  core::BufferPtr fetch(std::uint64_t id) override;
  void erase(std::uint64_t id) override;
  const std::string& node_name() const override { return node_name_; }
  StoreStats stats() const;

 private:
  struct Record {
    core::BufferPtr data;  // null while spilled
    std::size_t size = 0;
    std::uint64_t last_use = 0;
  };
  void make_room_locked(std::size_t need, std::uint64_t for_id);
  std::filesystem::path spill_path(std::uint64_t id) const;

  std::string node_name_;
  std::int64_t capacity_;
  std::filesystem::path spill_dir_;
  mutable std::mutex m_;
  std::unordered_map<std::uint64_t, Record> objects_;
  std::int64_t used_ = 0;
  std::int64_t spilled_ = 0;
  std::int64_t spills_ = 0;
  std::int64_t restores_ = 0;
  std::uint64_t clock_ = 0;
};

}  // namespace iogrid::runtime
