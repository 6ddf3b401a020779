#include "runtime/object_store.hpp"

#include <algorithm>
#include <fstream>
#include <vector>

#include "iogrid/core/errors.hpp"

namespace iogrid::runtime {

namespace {
std::string mib(std::int64_t b) { return std::to_string(b / (1024 * 1024)) + " MiB"; }
}  // namespace

ObjectStore::ObjectStore(std::string node_name, std::int64_t capacity_bytes, std::filesystem::path spill_dir)
    : node_name_(std::move(node_name)), capacity_(capacity_bytes), spill_dir_(std::move(spill_dir)) {}

ObjectStore::~ObjectStore() {
  std::error_code ec;
  if (spilled_ > 0 || std::filesystem::exists(spill_dir_, ec)) std::filesystem::remove_all(spill_dir_, ec);
}

std::filesystem::path ObjectStore::spill_path(std::uint64_t id) const {
  return spill_dir_ / (std::to_string(id) + ".obj");
}

void ObjectStore::make_room_locked(std::size_t need, std::uint64_t for_id) {
  if (used_ + std::int64_t(need) <= capacity_) return;
  if (std::int64_t(need) > capacity_)
    throw core::ObjectStoreFullError("iogrid: object of " + mib(need) + " does not fit in node '" + node_name_ +
                               "''s object store (capacity " + mib(capacity_) +
                               "); raise NodeOptions::object_store_bytes or split the object");
  // Candidates: resident, unpinned (only the store holds the buffer), least recently used first.
  std::vector<std::pair<std::uint64_t, std::uint64_t>> lru;
  for (auto& [id, r] : objects_)
    if (id != for_id && r.data && r.data.use_count() == 1) lru.emplace_back(r.last_use, id);
  std::sort(lru.begin(), lru.end());
  for (auto& [use, id] : lru) {
    if (used_ + std::int64_t(need) <= capacity_) break;
    auto& r = objects_[id];
    std::error_code ec;
    std::filesystem::create_directories(spill_dir_, ec);
    std::ofstream f(spill_path(id), std::ios::binary | std::ios::trunc);
    f.write(reinterpret_cast<const char*>(r.data->data()), std::streamsize(r.size));
    if (!f) throw core::ObjectStoreFullError("iogrid: spilling to " + spill_path(id).string() + " failed (disk full?)");
    r.data.reset();
    used_ -= std::int64_t(r.size);
    spilled_ += std::int64_t(r.size);
    ++spills_;
  }
  if (used_ + std::int64_t(need) > capacity_)
    throw core::ObjectStoreFullError("iogrid: node '" + node_name_ + "''s object store is full: " + mib(used_) + " of " +
                               mib(capacity_) + " in use by objects that readers still hold, " + mib(need) +
                               " more needed; drop references to objects you no longer need");
}

void ObjectStore::put(std::uint64_t id, core::BufferPtr data) {
  std::lock_guard<std::mutex> g(m_);
  auto size = data->size();
  make_room_locked(size, id);
  auto& r = objects_[id];
  r.data = std::move(data);
  r.size = size;
  r.last_use = ++clock_;
  used_ += std::int64_t(size);
}

core::BufferPtr ObjectStore::fetch(std::uint64_t id) {
  std::lock_guard<std::mutex> g(m_);
  auto it = objects_.find(id);
  if (it == objects_.end())
    throw core::Error("iogrid: object " + std::to_string(id) + " is no longer in node '" + node_name_ + "''s store");
  auto& r = it->second;
  r.last_use = ++clock_;
  if (r.data) return r.data;
  // Restore from disk.
  make_room_locked(r.size, id);
  auto buf = core::make_buffer(r.size);
  std::ifstream f(spill_path(id), std::ios::binary);
  f.read(reinterpret_cast<char*>(buf->data()), std::streamsize(r.size));
  if (!f) throw core::Error("iogrid: restoring object " + std::to_string(id) + " from " + spill_path(id).string() + " failed");
  f.close();
  std::error_code ec;
  std::filesystem::remove(spill_path(id), ec);
  spilled_ -= std::int64_t(r.size);
  used_ += std::int64_t(r.size);
  ++restores_;
  auto& rec = objects_[id];  // make_room may not touch `id`, but re-find for clarity
  rec.data = std::move(buf);
  return rec.data;
}

void ObjectStore::erase(std::uint64_t id) {
  core::BufferPtr drop;  // freed outside the lock
  std::lock_guard<std::mutex> g(m_);
  auto it = objects_.find(id);
  if (it == objects_.end()) return;
  if (it->second.data) {
    used_ -= std::int64_t(it->second.size);
    drop = std::move(it->second.data);
  } else {
    spilled_ -= std::int64_t(it->second.size);
    std::error_code ec;
    std::filesystem::remove(spill_path(id), ec);
  }
  objects_.erase(it);
}

StoreStats ObjectStore::stats() const {
  std::lock_guard<std::mutex> g(m_);
  return {used_, capacity_, spilled_, std::int64_t(objects_.size()), spills_, restores_};
}

}  // namespace iogrid::runtime
