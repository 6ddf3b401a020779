// The head's HTTP face (Boost.Beast on Asio, one thread, many clients at once): the web UI, the JSON API under
// /api/v1/, the live event stream and Prometheus /metrics (dashboard_http.hpp lists the routes and who may see
// what). It binds to 127.0.0.1 unless told otherwise (--dashboard-bind). Slow or hostile clients cannot stall
// it: a request must arrive within 10 s, headers and bodies are size-limited, at most 1024 connections are
// open, and a stream that falls 64 messages behind is dropped.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "runtime/cluster/dashboard_http.hpp"

namespace iogrid::runtime::cluster {

class Dashboard {
 public:
  // Throws iogrid::Error when it cannot listen on bind:port (0: any free port).
  Dashboard(std::uint16_t port, const std::string& bind, DashboardSource source, DashboardAccess access = {});
  ~Dashboard();
  std::uint16_t port() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace iogrid::runtime::cluster
