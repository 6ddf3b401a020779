#include "runtime/transport/punch.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <sstream>
#include <thread>

#include "runtime/transport/relay_hello.hpp"
#include "runtime/transport/tcp.hpp"

namespace iogrid::runtime::transport {

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr milliseconds kRetryPause{20};  // after a refusal (the peer's router or host answered our SYN first)
// The PEER line comes when the target has dialled in (the relay gives it 10 s), the answer after both punched.
constexpr milliseconds kMeetTimeout{12000};

bool loopback(const std::string& host) { return host.rfind("127.", 0) == 0 || host == "::1"; }

// The peer's address as a sockaddr; false when it is not a numeric IPv4 or IPv6 address.
bool peer_address(const PunchPlan& p, sockaddr_storage* out, socklen_t* len) {
  *out = {};
  auto* v4 = reinterpret_cast<sockaddr_in*>(out);
  if (::inet_pton(AF_INET, p.host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(p.port);
    *len = sizeof(sockaddr_in);
    return true;
  }
  auto* v6 = reinterpret_cast<sockaddr_in6*>(out);
  if (::inet_pton(AF_INET6, p.host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(p.port);
    *len = sizeof(sockaddr_in6);
    return true;
  }
  return false;
}

bool same_peer(const sockaddr_storage& a, const sockaddr_storage& b) {
  if (a.ss_family != b.ss_family) return false;
  if (a.ss_family == AF_INET) {
    const auto &x = reinterpret_cast<const sockaddr_in&>(a), &y = reinterpret_cast<const sockaddr_in&>(b);
    return x.sin_port == y.sin_port && x.sin_addr.s_addr == y.sin_addr.s_addr;
  }
  const auto &x = reinterpret_cast<const sockaddr_in6&>(a), &y = reinterpret_cast<const sockaddr_in6&>(b);
  return x.sin6_port == y.sin6_port && std::memcmp(&x.sin6_addr, &y.sin6_addr, sizeof x.sin6_addr) == 0;
}

int blocking(int fd) {
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  return fd;
}

// Step 4 on the relayed connection: one byte each way (both sides write theirs, then read the other's).
bool say(int fd, char c) { return write_all(fd, std::string(1, c)); }
bool hear(int fd, char* c, milliseconds timeout) {
  if (!wait_readable(fd, timeout)) return false;
  return ::recv(fd, c, 1, 0) == 1;
}

// Steps 2-4 for either side, once its relayed connection `relayed` (from port `local_port`) is spliced.
RelayLink punch_over(int relayed, std::uint16_t local_port) {
  const auto timeout = kMeetTimeout;
  RelayLink link;
  link.reached = true;
  std::string line;
  if (!read_line(relayed, &line, kRelayHelloMax, timeout)) {
    ::close(relayed);
    link.error = "the relay did not say where the peer is (the peer did not come, or the relay refused)";
    return link;
  }
  if (auto refusal = parse_relay_refusal(line)) {
    ::close(relayed);
    link.refused = refusal->code;
    link.error = "the relay refused (" + refusal->code + "): " + refusal->reason;
    return link;
  }
  auto plan = parse_punch_line(line);
  if (!plan) {
    ::close(relayed);
    link.error = "the relay's PEER line is malformed: '" + line + "'";
    return link;
  }
  int direct = -1;
  if (plan->window.count() > 0) {
    link.tried = true;
    std::string error;
    direct = punch_tcp(local_port, *plan, &error);
  }
  const char mine = direct >= 0 ? 'D' : 'R';
  char theirs = 'R';
  const bool agreed = say(relayed, mine) && hear(relayed, &theirs, timeout);
  if (!agreed) {
    if (direct >= 0) ::close(direct);
    ::close(relayed);
    link.error = "the peer did not finish the punch exchange through the relay";
    return link;
  }
  if (mine == 'D' && theirs == 'D') {
    ::close(relayed);
    link.fd = direct;
    link.punched = true;
    return link;
  }
  if (direct >= 0) ::close(direct);
  link.fd = relayed;
  return link;
}

}  // namespace

std::string punch_line(const PunchPlan& p) {
  return "IOGRID-RELAY/1 PEER " + p.host + " " + std::to_string(p.port) + " " + std::to_string(p.start_in.count()) + " " +
         std::to_string(p.window.count()) + "\n";
}

std::optional<PunchPlan> parse_punch_line(const std::string& line) {
  std::istringstream in(line);
  std::string magic, verb, host, extra;
  long port = -1, start = -1, window = -1;
  if (!(in >> magic >> verb >> host >> port >> start >> window) || (in >> extra)) return std::nullopt;
  if (magic != "IOGRID-RELAY/1" || verb != "PEER" || port < 0 || port > 65535 || start < 0 || window < 0 ||
      start > kMaxPunchWindow.count() || window > kMaxPunchWindow.count() || host.size() > 64)
    return std::nullopt;
  PunchPlan p{host, static_cast<std::uint16_t>(port), milliseconds(start), milliseconds(window)};
  sockaddr_storage a;
  socklen_t len;
  if (!peer_address(p, &a, &len)) return std::nullopt;  // a name would need resolving: the relay sends numbers
  return p;
}

PunchPlan plan_punch(const std::string& mine, const std::string& theirs, std::uint16_t their_port,
                     std::chrono::microseconds my_rtt, std::chrono::microseconds their_rtt, bool loopback_ok) {
  PunchPlan p{theirs, their_port, milliseconds(0), milliseconds(0)};
  if (their_port == 0 || theirs.empty()) return p;
  if (!loopback_ok && (mine == theirs || loopback(mine) || loopback(theirs))) return p;
  // Both SYNs should leave when the line has reached the farther side: the nearer one waits half the difference.
  const auto gap = std::max(std::chrono::microseconds(0), their_rtt - my_rtt) / 2;
  p.start_in = std::min(kMaxPunchWindow, std::chrono::duration_cast<milliseconds>(gap));
  const auto rtt = std::chrono::duration_cast<milliseconds>(std::max(my_rtt, their_rtt));
  p.window = std::clamp(kMinPunchWindow + 2 * rtt, kMinPunchWindow, kMaxPunchWindow);
  return p;
}

std::chrono::microseconds tcp_rtt(int fd) {
  tcp_info info{};
  socklen_t len = sizeof info;
  if (::getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) != 0) return std::chrono::microseconds(0);
  return std::chrono::microseconds(info.tcpi_rtt);
}

int punch_tcp(std::uint16_t local_port, const PunchPlan& plan, std::string* error) {
  sockaddr_storage peer;
  socklen_t len;
  if (!peer_address(plan, &peer, &len)) {
    if (error) *error = "not a numeric address: " + plan.host;
    return -1;
  }
  // Besides connecting, listen on the same port: a peer's SYN that arrives while no connecting socket of ours
  // is there (between a refusal and the retry) is accepted instead of refused. Either way it is the one
  // connection between the two ports (a TCP connection is its four numbers), so both sides agree on it.
  int err = 0;
  const int listener = reusable_socket(peer.ss_family, local_port, &err);
  if (listener < 0 || ::listen(listener, 4) != 0) {
    if (listener >= 0) err = errno, ::close(listener);
    if (error) *error = std::string("cannot listen on the punching port: ") + std::strerror(err);
    return -1;
  }
  std::this_thread::sleep_for(plan.start_in);
  const auto until = Clock::now() + plan.window;
  int conn = -1, result = -1;
  Clock::time_point retry_at = Clock::now();
  err = ETIMEDOUT;
  while (result < 0 && Clock::now() < until) {
    if (conn < 0 && Clock::now() >= retry_at) {
      conn = reusable_socket(peer.ss_family, local_port, &err);
      if (conn >= 0 && ::connect(conn, reinterpret_cast<const sockaddr*>(&peer), len) != 0 && errno != EINPROGRESS) {
        err = errno;  // e.g. the four numbers are already the accepted connection's: the listener has it
        ::close(conn);
        conn = -1;
      }
      if (conn < 0) retry_at = Clock::now() + kRetryPause;
    }
    pollfd p[2] = {{listener, POLLIN, 0}, {conn, POLLOUT, 0}};
    const auto next = conn >= 0 ? until : std::min(until, retry_at);
    const auto left = std::chrono::duration_cast<milliseconds>(next - Clock::now()).count();
    const int r = ::poll(p, conn >= 0 ? 2 : 1, static_cast<int>(std::max<std::int64_t>(0, left)));
    if (r < 0 && errno != EINTR) {
      err = errno;
      break;
    }
    if (r <= 0) continue;
    if (p[0].revents & POLLIN) {
      sockaddr_storage from{};
      socklen_t from_len = sizeof from;
      const int a = ::accept4(listener, reinterpret_cast<sockaddr*>(&from), &from_len, SOCK_CLOEXEC);
      if (a >= 0 && same_peer(from, peer)) result = blocking(a);
      else if (a >= 0) ::close(a);  // someone else knocking on the punching port
    }
    if (result < 0 && conn >= 0 && (p[1].revents & (POLLOUT | POLLERR | POLLHUP))) {
      socklen_t l = sizeof err;
      ::getsockopt(conn, SOL_SOCKET, SO_ERROR, &err, &l);
      if (err == 0) {
        result = blocking(conn);
        conn = -1;
      } else {  // refused (the peer's host answered before its own SYN left) or unreachable: again shortly
        ::close(conn);
        conn = -1;
        retry_at = Clock::now() + kRetryPause;
      }
    }
  }
  if (conn >= 0) ::close(conn);
  ::close(listener);
  if (result < 0 && error) *error = std::strerror(err);
  return result;
}

namespace {
// Either side: dials the relay (from a reusable port when punching), sends `hello`, then punches or not.
RelayLink meet(const std::string& relay_host, std::uint16_t relay_port, const std::string& hello, bool punch,
               milliseconds timeout) {
  RelayLink link;
  const int fd = dial_tcp(relay_host, relay_port, timeout, &link.error, punch);
  if (fd < 0) return link;
  link.reached = true;
  if (!write_all(fd, hello)) {
    ::close(fd);
    link.error = "the relay closed the connection";
    return link;
  }
  if (!punch) {
    link.fd = fd;
    return link;
  }
  return punch_over(fd, local_port_of(fd));
}
}  // namespace

RelayLink relay_connect(const std::string& relay_host, std::uint16_t relay_port, const std::string& target,
                        const std::string& token, bool punch, milliseconds timeout) {
  return meet(relay_host, relay_port, relay_hello(punch ? "PUNCH" : "CONNECT", target, token), punch, timeout);
}

RelayLink relay_accept(const std::string& relay_host, std::uint16_t relay_port, const std::string& session,
                       const std::string& token, bool punch, milliseconds timeout) {
  return meet(relay_host, relay_port, relay_hello("ACCEPT", session, token), punch, timeout);
}

RelayLink relay_meet(const std::string& relay_host, std::uint16_t relay_port, const std::string& name,
                     const std::string& token, milliseconds timeout) {
  return meet(relay_host, relay_port, relay_hello("MEET", name, token), true, timeout);
}

}  // namespace iogrid::runtime::transport
