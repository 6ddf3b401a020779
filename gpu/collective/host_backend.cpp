// make_host: the backend for host-memory buffers, as GroupOptions::host_backend says. With "auto" every member
// publishes its process token under <prefix>/process/<rank> and reads the others'; all members see the same
// tokens, so all take the same decision: the local backend when they share this process; otherwise Gloo when
// every member can dial every other (members_dial_each_other), else the ring (members behind NATs).
#include <unistd.h>

#include <random>

#include "gpu/collective/backend.hpp"

namespace iogrid::gpu::collective {

std::string process_token() {
  // The random part is drawn once; the process id is read at each call, so a forked child differs from its parent.
  static const std::string nonce = [] {
    std::random_device rd;
    return std::to_string((std::uint64_t(rd()) << 32) | rd());
  }();
  return std::to_string(::getpid()) + "-" + nonce;
}

std::unique_ptr<Backend> make_host(Store& store, const std::string& prefix, int rank, int size, const GroupOptions& o) {
  if (o.host_backend == "gloo") return make_gloo(store, prefix, rank, size, o);
  if (o.host_backend == "local") return make_local(store, prefix, rank, size, o);
  if (o.host_backend == "ring") return make_ring(store, prefix, rank, size, o);
  if (o.host_backend != "auto" && !o.host_backend.empty())
    throw CollectiveError("group " + prefix + ": unknown host backend '" + o.host_backend + "' (auto, local, gloo or ring)");
  check_member(prefix, rank, size);
  const std::string me = process_token();
  store.set(prefix + "/process/" + std::to_string(rank), me);
  std::vector<std::string> keys;
  for (int r = 0; r < size; ++r) keys.push_back(prefix + "/process/" + std::to_string(r));
  try {
    store.wait(keys, o.timeout);
  } catch (const CollectiveError& e) {
    throw CollectiveError("group " + prefix + " (rank " + std::to_string(rank) + " of " + std::to_string(size) + "): " + e.what());
  }
  bool one_process = true;
  for (const auto& k : keys) one_process = one_process && store.get(k).value_or("") == me;
  if (one_process) return make_local(store, prefix, rank, size, o);
  // Gloo needs every member to dial every other (a full mesh); members behind NATs form the ring instead.
  bool mesh = false;
  try {
    mesh = members_dial_each_other(store, prefix, rank, size, o);
  } catch (const CollectiveError& e) {
    throw CollectiveError("group " + prefix + " (rank " + std::to_string(rank) + " of " + std::to_string(size) + "): " + e.what());
  }
  return mesh ? make_gloo(store, prefix, rank, size, o) : make_ring(store, prefix, rank, size, o);
}

}  // namespace iogrid::gpu::collective
