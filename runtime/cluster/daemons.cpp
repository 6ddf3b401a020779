#include "runtime/cluster/daemons.hpp"

#include "runtime/cluster/dashboard.hpp"
#include "runtime/cluster/head_service.hpp"
#include "runtime/cluster/relay_server.hpp"
#include "runtime/transport/liveness.hpp"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <signal.h>
#include <spdlog/spdlog.h>

#include <caf/all.hpp>
#include <caf/io/all.hpp>
#include <future>
#include <ostream>

namespace iogrid::runtime::cluster {

namespace {

sigset_t block_stop_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);  // threads started later inherit the mask
  return set;
}

int wait_for_stop(sigset_t set) {
  int sig = 0;
  sigwait(&set, &sig);
  return sig;
}

void configure_logging(const std::string& role, const std::string& level) {
  spdlog::set_pattern("[%Y-%m-%d %H:%M:%S.%e] [" + role + "] [%l] %v");
  spdlog::set_level(spdlog::level::from_str(level));
}

caf::actor_system_config daemon_config() {
  caf::actor_system_config cfg;
  cfg.load<caf::io::middleman>();
  cfg.set("scheduler.max-threads", 2);
  cfg.set("logger.verbosity", caf::atom("quiet"));
  return cfg;
}

}  // namespace

std::string primary_ip() {
  ifaddrs* list = nullptr;
  std::string out = "127.0.0.1";
  if (getifaddrs(&list) != 0) return out;
  for (auto* a = list; a; a = a->ifa_next) {
    if (!a->ifa_addr || a->ifa_addr->sa_family != AF_INET) continue;
    char buf[INET_ADDRSTRLEN] = {};
    inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(a->ifa_addr)->sin_addr, buf, sizeof buf);
    std::string ip = buf;
    if (ip.rfind("127.", 0) == 0) continue;
    out = ip;
    break;
  }
  freeifaddrs(list);
  return out;
}

int run_head(const HeadOptions& opts, const std::string& token_file, const std::string& log_level, std::ostream& out) {
  auto signals = block_stop_signals();
  configure_logging("head", log_level);
  auto cfg = daemon_config();
  caf::actor_system sys{cfg};
  transport::EndpointConfig ec;
  ec.token = opts.token;
  ec.name = "head";
  try {
    ec.tls = transport::make_tls_context(opts.tls);
  } catch (const std::exception& e) {
    spdlog::error("{}", e.what());
    return 1;
  }
  auto svc = make_head_service(opts);
  auto ep = transport::spawn_endpoint(sys, svc, ec);
  auto bound = std::make_shared<std::promise<std::uint16_t>>();
  auto f = bound->get_future();
  transport::post(ep, [bound, opts](transport::Endpoint& e) {
    try {
      bound->set_value(e.listen(opts.port, opts.bind));
    } catch (...) {
      bound->set_exception(std::current_exception());
    }
  });
  std::uint16_t port = 0;
  try {
    port = f.get();
  } catch (const std::exception& e) {
    spdlog::error("{}", e.what());
    transport::post(ep, [](transport::Endpoint& e) { e.stop(); });
    return 1;
  }
  // Node liveness datagrams on the control port's number (UDP): a node whose event loop is starved still counts
  // as alive while its liveness thread is heard and its loop ran within the last 30 s.
  // (The head core holds the listener: it is asked from the endpoint's thread until that stops.)
  try {
    auto liveness = std::make_shared<transport::LivenessListener>(opts.token, opts.bind, port);
    set_head_heard(ep, svc, [liveness](std::uint32_t node) { return liveness->heard(node, std::chrono::seconds(30)); });
  } catch (const std::exception& e) {
    spdlog::warn("{}: nodes are judged by their control connection's heartbeats alone", e.what());
  }
  // The relay: workers reach a driver that cannot be dialled (behind a NAT or a firewall) through it.
  std::shared_ptr<RelayServer> relay;  // the status asks for its figures while it lives (weak_ptr)
  if (opts.relay_port >= 0) {
    try {
      RelayOptions ro;
      ro.token = opts.token;
      ro.bind = opts.bind;
      ro.port = static_cast<std::uint16_t>(opts.relay_port);
      ro.max_bytes = opts.relay_max_bytes;
      ro.ask_target = head_relay_asker(ep, svc);
      relay = std::make_shared<RelayServer>(std::move(ro));
      set_head_relay(ep, svc, relay->port(), [weak = std::weak_ptr<RelayServer>(relay)] {
        auto r = weak.lock();
        return r ? r->stats() : RelayStats{};
      });
    } catch (const std::exception& e) {
      spdlog::warn("{} (the head runs without a relay: drivers behind a NAT cannot be reached)", e.what());
    }
  }
  std::unique_ptr<Dashboard> dashboard;
  if (opts.dashboard_port >= 0) {
    try {
      DashboardSource source;
      source.status_json = [ep, svc] { return head_status_tree(ep, svc); };
      source.admin = [ep, svc](const std::string& command, const std::string& args, const std::string& who) {
        return head_admin(ep, svc, command, args, who);
      };
      source.history = head_history(svc);
      DashboardAccess access;
      if (!opts.dashboard_open) {
        access.token = opts.token;
        access.keys_file = opts.ui_keys_file;
      }
      dashboard = std::make_unique<Dashboard>(static_cast<std::uint16_t>(opts.dashboard_port), opts.dashboard_bind,
                                              std::move(source), std::move(access));
    } catch (const std::exception& e) {
      if (opts.dashboard_port_explicit) {
        spdlog::error("{}", e.what());
        transport::post(ep, [](transport::Endpoint& e) { e.stop(); });
        return 1;
      }
      spdlog::warn("{} (the head runs without a dashboard; pick one with --dashboard-port)", e.what());
    }
  }
  auto host = opts.bind == "0.0.0.0" || opts.bind.empty() ? primary_ip() : opts.bind;
  auto addr = host + ":" + std::to_string(port);
  if (dashboard)
    out << "iogrid dashboard on http://" << opts.dashboard_bind << ":" << dashboard->port()
        << "/  (explorer public; worker view and console: log in with the cluster token"
        << (opts.dashboard_open ? std::string(" -- not needed, --dashboard-open") : std::string(" or a key from iogrid ui-key add"))
        << "; JSON API under /api/v1/, Prometheus: /metrics)\n";
  out << "iogrid head listening on " << opts.bind << ":" << port << " (cluster token: " << token_file
      << (opts.tls.enabled() ? ", TLS with CA " + opts.tls.ca : std::string(", no TLS")) << ")\n"
      << "  join a machine:   iogrid node --address " << addr << " --token-file " << token_file << "\n"
      << "  run a program:    IOGRID_ADDRESS=" << addr << " IOGRID_TOKEN_FILE=" << token_file << " ./my_program\n"
      << "  see the cluster:  iogrid status --address " << addr << "\n"
      << "IOGRID_HEAD_PORT=" << port << "\n";
  if (dashboard) out << "IOGRID_DASHBOARD_PORT=" << dashboard->port() << "\n";
  if (relay) out << "IOGRID_RELAY_PORT=" << relay->port() << "\n";
  out << std::flush;
  int sig = wait_for_stop(signals);
  spdlog::info("stopping on signal {}", sig);
  transport::post(ep, [](transport::Endpoint& e) { e.stop(); });
  return 0;
}

int run_node(const NodeDaemonOptions& opts, const std::string& log_level) {
  auto signals = block_stop_signals();
  configure_logging("node " + opts.node.name, log_level);
  auto cfg = daemon_config();
  caf::actor_system sys{cfg};
  transport::EndpointConfig ec;
  ec.token = opts.token;
  ec.name = opts.node.name;
  try {
    ec.tls = transport::make_tls_context(opts.tls);
  } catch (const std::exception& e) {
    spdlog::error("{}", e.what());
    return 1;
  }
  auto ep = transport::spawn_endpoint(sys, make_node_service(opts), ec);
  int sig = wait_for_stop(signals);
  spdlog::info("stopping on signal {}", sig);
  transport::post(ep, [](transport::Endpoint& e) { e.stop(); });
  return 0;
}

}  // namespace iogrid::runtime::cluster
