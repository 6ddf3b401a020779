// make_host: the backend for host-memory buffers, as GroupOptions::host_backend says. With "auto" every member
// publishes its process token under <prefix>/process/<rank> and reads the others'; all members see the same
// tokens, so all take the same decision: the local backend when they share this process, Gloo otherwise.
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
  return one_process ? make_local(store, prefix, rank, size, o) : make_gloo(store, prefix, rank, size, o);
}

}  // namespace iogrid::gpu::collective
