// The head's HTTP face (Boost.Beast): `/` a status page that refreshes itself, `/api/status` the cluster
// status as JSON (the same document as `iogrid status --json`), `/metrics` Prometheus text, and the head's
// history under /api/v1/ (dashboard_http.hpp lists the routes).
// Read-only and unauthenticated: it binds to 127.0.0.1 unless told otherwise (--dashboard-bind).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "runtime/head/history.hpp"

namespace iogrid::runtime::cluster {

class Dashboard {
 public:
  // `snapshot` returns the current status JSON (called from the dashboard's thread; may throw); `history`
  // (optional, thread-safe) answers /api/v1/series, /api/v1/history and /api/v1/events.
  Dashboard(std::uint16_t port, const std::string& bind, std::function<std::string()> snapshot,
            std::shared_ptr<head::History> history = nullptr);
  ~Dashboard();
  std::uint16_t port() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace iogrid::runtime::cluster
