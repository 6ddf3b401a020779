// A data-plane server over an object store (a node's, or a driver's for its own large puts).
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "runtime/object_store.hpp"
#include "runtime/transport/data_plane.hpp"

namespace iogrid::runtime::cluster {

// `remote_erase`: whether peers may free objects (owners freeing what lives on a node); a driver's objects
// are freed by the driver's own references only.
// `on_erase` runs (on the server's thread) after a peer freed an object.
inline std::unique_ptr<transport::DataServer> serve_store(const std::string& token, std::shared_ptr<ObjectStore> store,
                                                          bool remote_erase, std::shared_ptr<ssl_ctx_st> tls,
                                                          std::function<void(std::uint64_t)> on_erase = {}) {
  return std::make_unique<transport::DataServer>(
      token, "0.0.0.0",
      [store](std::uint64_t key) -> core::BufferPtr {
        try {
          return store->fetch(key);
        } catch (const std::exception&) {
          return nullptr;
        }
      },
      [store, remote_erase, on_erase](std::uint64_t key) {
        if (!remote_erase) return;
        store->erase(key);
        if (on_erase) on_erase(key);
      },
      std::move(tls));
}

}  // namespace iogrid::runtime::cluster
