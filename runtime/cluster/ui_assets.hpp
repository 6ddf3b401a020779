// The web UI's files (ui/, built by Vite), embedded in the binary at build time (cmake/embed_ui.cmake).
// A build without Node has one file instead: a plain page that says so and still shows the cluster.
#pragma once

#include <cstddef>
#include <string_view>

namespace iogrid::runtime::cluster {

struct UiAsset {
  const char* path;          // "/index.html", "/assets/index-3f2a.js"
  const char* content_type;
  const unsigned char* data;
  std::size_t size;
};

// The file served at `path`, or nullptr.
const UiAsset* ui_asset(std::string_view path);
// False in a build without Node (the fallback page).
bool ui_built();

}  // namespace iogrid::runtime::cluster
