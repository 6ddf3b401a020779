// The head's relay (runtime/cluster/relay_server.hpp): signed first lines only, a dialer spliced to the target
// it names once the target dials in, bytes both ways (early ones included), limits, refusals.
#include <catch2/catch.hpp>
#include <sys/socket.h>

#include <algorithm>
#include <boost/asio.hpp>
#include <chrono>
#include <cstring>
#include <future>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include "runtime/cluster/relay_server.hpp"
#include "runtime/transport/data_plane.hpp"
#include "runtime/transport/punch.hpp"
#include "runtime/transport/relay_hello.hpp"
#include "runtime/transport/tcp.hpp"

using namespace iogrid::runtime;
namespace asio = boost::asio;
using tcp = asio::ip::tcp;

namespace {

const std::string kToken = "relay-test-token";

tcp::socket dial(asio::io_context& io, std::uint16_t port, const std::string& line) {
  tcp::socket s(io);
  s.connect({asio::ip::make_address("127.0.0.1"), port});
  asio::write(s, asio::buffer(line));
  return s;
}

// Reads exactly n bytes, or what came before the peer closed.
std::string read_n(tcp::socket& s, std::size_t n) {
  std::string out(n, '\0');
  boost::system::error_code ec;
  const auto got = asio::read(s, asio::buffer(out), ec);
  out.resize(got);
  return out;
}

// A typed refusal (relay_hello.hpp) read from `s`, which must then be closed: its code, or "" when none came.
std::string refusal_then_closed(tcp::socket& s) {
  asio::streambuf buf;
  boost::system::error_code ec;
  asio::read_until(s, buf, '\n', ec);
  if (ec) return "";
  std::string line(asio::buffers_begin(buf.data()), asio::buffers_end(buf.data()));
  const auto r = transport::parse_relay_refusal(line.substr(0, line.find('\n')));
  buf.consume(buf.size());
  char c;
  s.read_some(asio::buffer(&c, 1), ec);
  const bool closed = ec == asio::error::eof || ec == asio::error::connection_reset;
  return r && closed ? r->code : "";
}

bool closed_by_peer(tcp::socket& s) {
  char c;
  boost::system::error_code ec;
  s.read_some(asio::buffer(&c, 1), ec);
  return ec == asio::error::eof || ec == asio::error::connection_reset;
}

}  // namespace

TEST_CASE("relay first lines are signed with the cluster token", "[relay]") {
  const auto line = transport::relay_hello("CONNECT", "job-7", kToken);
  REQUIRE(line.back() == '\n');
  auto h = transport::parse_relay_hello(line.substr(0, line.size() - 1), kToken);
  REQUIRE(h);
  CHECK(h->verb == "CONNECT");
  CHECK(h->id == "job-7");
  CHECK_FALSE(transport::parse_relay_hello(line.substr(0, line.size() - 1), "another-token"));
  auto tampered = line.substr(0, line.size() - 1);
  tampered.replace(tampered.find("job-7"), 5, "job-8");
  CHECK_FALSE(transport::parse_relay_hello(tampered, kToken));
  CHECK_FALSE(transport::parse_relay_hello("GET / HTTP/1.1", kToken));
  CHECK_FALSE(transport::parse_relay_hello("IOGRID-RELAY/1 CONNECT a;b n m", kToken));
}

TEST_CASE("the relay splices a dialer to the target it names, early bytes first, both ways", "[relay]") {
  asio::io_context io;
  std::promise<std::string> asked;
  cluster::RelayOptions o;
  o.token = kToken;
  o.bind = "127.0.0.1";
  o.ask_target = [&](const std::string& target, const std::string& session, bool) {
    if (target != "job-1") return false;
    asked.set_value(session);
    return true;
  };
  cluster::RelayServer relay(o);
  // The dialer sends its first line and at once its first bytes (the relay holds them for the target).
  auto a = dial(io, relay.port(), transport::relay_hello("CONNECT", "job-1", kToken) + "hello from the worker");
  auto session = asked.get_future();
  REQUIRE(session.wait_for(std::chrono::seconds(5)) == std::future_status::ready);
  auto b = dial(io, relay.port(), transport::relay_hello("ACCEPT", session.get(), kToken));
  CHECK(read_n(b, 21) == "hello from the worker");
  asio::write(b, asio::buffer(std::string("and back from the driver")));
  CHECK(read_n(a, 24) == "and back from the driver");
  const std::string big(1 << 20, 'x');
  std::thread writer([&] { asio::write(a, asio::buffer(big)); });
  CHECK(read_n(b, big.size()) == big);
  writer.join();
  CHECK(relay.stats().sessions == 1);
  CHECK(relay.stats().bytes >= big.size() + 45);
  // Either side closing closes the other.
  a.close();
  CHECK(closed_by_peer(b));
}

TEST_CASE("the relay refuses unsigned lines, unknown targets and sessions, and ends a session at its byte limit",
          "[relay]") {
  asio::io_context io;
  cluster::RelayOptions o;
  o.token = kToken;
  o.bind = "127.0.0.1";
  o.max_bytes = 1000;
  std::promise<std::string> asked;
  o.ask_target = [&](const std::string& target, const std::string& session, bool) {
    if (target != "job-1") return false;
    asked.set_value(session);
    return true;
  };
  cluster::RelayServer relay(o);
  auto unsigned_line = dial(io, relay.port(), transport::relay_hello("CONNECT", "job-1", "not-the-token"));
  CHECK(closed_by_peer(unsigned_line));
  auto unknown = dial(io, relay.port(), transport::relay_hello("CONNECT", "job-9", kToken));
  CHECK(closed_by_peer(unknown));
  auto stray = dial(io, relay.port(), transport::relay_hello("ACCEPT", "nosuchsession", kToken));
  CHECK(closed_by_peer(stray));
  // A line that never ends is cut off (the relay buffers at most 64 KiB of it), not held in memory.
  tcp::socket endless(io);
  endless.connect({asio::ip::make_address("127.0.0.1"), relay.port()});
  boost::system::error_code write_error;
  asio::write(endless, asio::buffer(std::string(200 * 1024, 'z')), write_error);  // cut off part way: an error here is fine
  CHECK(closed_by_peer(endless));
  CHECK(relay.stats().refused == 4);

  auto a = dial(io, relay.port(), transport::relay_hello("CONNECT", "job-1", kToken));
  auto session = asked.get_future();
  REQUIRE(session.wait_for(std::chrono::seconds(5)) == std::future_status::ready);
  auto b = dial(io, relay.port(), transport::relay_hello("ACCEPT", session.get(), kToken));
  boost::system::error_code ec;
  asio::write(a, asio::buffer(std::string(5000, 'y')), ec);
  const auto got = read_n(b, 5000);
  CHECK(got.size() >= 1000);
  CHECK(got.size() == 1000);  // cut at the limit: the session ended
}

namespace {

// A port nothing listens on (bound, then released).
std::uint16_t closed_port() {
  asio::io_context io;
  tcp::acceptor a(io, {asio::ip::make_address("127.0.0.1"), 0});
  const auto p = a.local_endpoint().port();
  a.close();
  return p;
}

// A data-plane server holding `objects`, reached only through a relay: its address as a puller is told it
// cannot be dialled; the relay knows it as "data-node:1" and asks it to dial in. `punch`: the relay plans hole
// punches between loopback addresses (as it would between two homes' routers), else it never does here.
struct HiddenServer {
  std::map<std::uint64_t, std::string> objects;
  std::mutex m;
  std::unique_ptr<transport::DataServer> server;
  std::unique_ptr<cluster::RelayServer> relay;
  std::atomic<int> asked{0};

  explicit HiddenServer(bool punch = false) {
    server = std::make_unique<transport::DataServer>(
        kToken, "127.0.0.1",
        [this](std::uint64_t key) -> iogrid::core::BufferPtr {
          std::lock_guard<std::mutex> g(m);
          auto it = objects.find(key);
          if (it == objects.end()) return nullptr;
          auto b = iogrid::core::make_buffer(it->second.size());
          std::memcpy(b->data(), it->second.data(), it->second.size());
          return b;
        },
        [this](std::uint64_t key) {
          std::lock_guard<std::mutex> g(m);
          objects.erase(key);
        });
    cluster::RelayOptions o;
    o.token = kToken;
    o.bind = "127.0.0.1";
    o.punch_loopback = punch;
    o.ask_target = [this](const std::string& target, const std::string& session, bool punch_asked) {
      if (target != "data-node:1") return false;
      ++asked;
      server->serve_dialled("127.0.0.1", relay->port(), session, punch_asked);
      return true;
    };
    relay = std::make_unique<cluster::RelayServer>(o);
  }
  ~HiddenServer() {
    relay.reset();
    server.reset();
  }
};

}  // namespace

TEST_CASE("a data-plane pull falls back to the relay when the holder cannot be dialled, and stays there", "[relay]") {
  HiddenServer hidden;
  std::string blob(9u << 20, '\0');  // more than two 4 MiB chunks, each checked on arrival
  for (std::size_t i = 0; i < blob.size(); ++i) blob[i] = static_cast<char>(i * 7 + 3);
  hidden.objects[42] = blob;
  hidden.objects[43] = "small";
  transport::DataClient client(kToken);
  client.set_relay("127.0.0.1", hidden.relay->port(), std::chrono::milliseconds(300));
  const auto nowhere = closed_port();  // what a NAT's address looks like from outside: nobody answers there

  auto got = client.fetch("127.0.0.1", nowhere, 42, blob.size(), "data-node:1");
  REQUIRE(got);
  CHECK(std::string(reinterpret_cast<const char*>(got->data()), got->size()) == blob);
  auto st = client.stats();
  CHECK(st.relayed == 1);
  CHECK(st.last_fallback_seconds > 0);
  CHECK(st.last_fallback_seconds < 2);
  CHECK(hidden.asked == 1);
  // The relayed connection is kept: the next pull and a free reuse it, no new relay session.
  auto small = client.fetch("127.0.0.1", nowhere, 43, 5, "data-node:1");
  CHECK(std::string(reinterpret_cast<const char*>(small->data()), small->size()) == "small");
  client.erase_later("127.0.0.1", nowhere, 42, "data-node:1");
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  for (;;) {
    {
      std::lock_guard<std::mutex> g(hidden.m);
      if (!hidden.objects.count(42)) break;
    }
    REQUIRE(std::chrono::steady_clock::now() < deadline);
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  CHECK(hidden.asked == 1);
  CHECK(hidden.relay->stats().sessions == 1);
  CHECK(hidden.relay->stats().bytes >= blob.size());

  // A second client (another process): its pool is empty, so it dials again, fails, and goes through the relay.
  transport::DataClient other(kToken);
  other.set_relay("127.0.0.1", hidden.relay->port(), std::chrono::milliseconds(300));
  CHECK(other.fetch("127.0.0.1", nowhere, 43, 5, "data-node:1")->size() == 5);
  CHECK(hidden.asked == 2);
}

TEST_CASE("a data-plane pull gives up on a holder that never answers within the direct timeout", "[relay]") {
  // A firewall that drops packets: a listener whose accept queue is full drops further connection attempts.
  asio::io_context io;
  tcp::acceptor full(io);
  full.open(tcp::v4());
  full.bind({asio::ip::make_address("127.0.0.1"), 0});
  full.listen(0);
  std::vector<tcp::socket> queued;
  const tcp::endpoint target(asio::ip::make_address("127.0.0.1"), full.local_endpoint().port());
  for (int i = 0; i < 8; ++i) {  // ::connect on a non-blocking socket: asio's own connect would wait for the answer
    queued.emplace_back(io);
    queued.back().open(tcp::v4());
    queued.back().non_blocking(true);
    (void)::connect(queued.back().native_handle(), target.data(), static_cast<socklen_t>(target.size()));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  HiddenServer hidden;
  hidden.objects[7] = "behind a firewall";
  transport::DataClient client(kToken);
  client.set_relay("127.0.0.1", hidden.relay->port(), std::chrono::milliseconds(400));
  const auto t0 = std::chrono::steady_clock::now();
  auto got = client.fetch("127.0.0.1", full.local_endpoint().port(), 7, 0, "data-node:1");
  const auto took = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  CHECK(std::string(reinterpret_cast<const char*>(got->data()), got->size()) == "behind a firewall");
  CHECK(client.stats().relayed == 1);
  CHECK(took < 3);  // the direct timeout, then the relay: never the kernel's minutes of retries
}

TEST_CASE("a data-plane pull says why when neither the holder nor its relay name can be reached", "[relay]") {
  HiddenServer hidden;
  const auto nowhere = closed_port();
  transport::DataClient no_relay(kToken);
  CHECK_THROWS_WITH(no_relay.fetch("127.0.0.1", nowhere, 1, 0, "data-node:1"),
                    Catch::Contains("cannot reach the data plane at 127.0.0.1:" + std::to_string(nowhere)));
  transport::DataClient client(kToken);
  client.set_relay("127.0.0.1", hidden.relay->port(), std::chrono::milliseconds(300));
  // A name the head does not know: the relay refuses and the pull says so.
  CHECK_THROWS_WITH(client.fetch("127.0.0.1", nowhere, 1, 0, "data-node:9"),
                    Catch::Contains("the relay did not reach the data plane of 'data-node:9'"));
  // No name (a holder that never said it could be relayed): the direct error, as before.
  CHECK_THROWS_WITH(client.fetch("127.0.0.1", nowhere, 1, 0, ""), Catch::Contains("cannot reach the data plane"));
  // The relay itself gone: both errors named.
  const auto relay_port = hidden.relay->port();
  hidden.relay.reset();
  CHECK_THROWS_WITH(client.fetch("127.0.0.1", nowhere, 1, 0, "data-node:1"),
                    Catch::Contains("nor the relay at 127.0.0.1:" + std::to_string(relay_port)));
}

TEST_CASE("the relay's PEER line: written, read back, refused when malformed or out of bounds", "[relay][punch]") {
  const transport::PunchPlan p{"10.1.2.3", 40001, std::chrono::milliseconds(7), std::chrono::milliseconds(900)};
  const auto line = transport::punch_line(p);
  REQUIRE(line.back() == '\n');
  auto back = transport::parse_punch_line(line.substr(0, line.size() - 1));
  REQUIRE(back);
  CHECK(back->host == "10.1.2.3");
  CHECK(back->port == 40001);
  CHECK(back->start_in.count() == 7);
  CHECK(back->window.count() == 900);
  CHECK(transport::parse_punch_line("IOGRID-RELAY/1 PEER fe80::1 9 0 500"));
  CHECK_FALSE(transport::parse_punch_line("IOGRID-RELAY/1 PEER example.com 9 0 500"));  // numbers only
  CHECK_FALSE(transport::parse_punch_line("IOGRID-RELAY/1 PEER 10.0.0.1 70000 0 500"));
  CHECK_FALSE(transport::parse_punch_line("IOGRID-RELAY/1 PEER 10.0.0.1 9 0 999999"));  // longer than any window
  CHECK_FALSE(transport::parse_punch_line("IOGRID-RELAY/1 PEER 10.0.0.1 9 -1 500"));
  CHECK_FALSE(transport::parse_punch_line("IOGRID-RELAY/1 PEER 10.0.0.1 9 0 500 extra"));
  CHECK_FALSE(transport::parse_punch_line("IOGRID-RELAY/1 CONNECT 10.0.0.1 9 0 500"));
}

TEST_CASE("the relay's punch plan: the nearer side waits, windows are bounded, no punch on one address", "[relay][punch]") {
  using us = std::chrono::microseconds;
  // 40 ms to the relay on one side, 10 ms on the other: the nearer one starts 15 ms later.
  auto near = transport::plan_punch("198.51.100.1", "203.0.113.9", 5000, us(10000), us(40000));
  auto far = transport::plan_punch("203.0.113.9", "198.51.100.1", 6000, us(40000), us(10000));
  CHECK(near.start_in.count() == 15);
  CHECK(far.start_in.count() == 0);
  CHECK(near.host == "203.0.113.9");
  CHECK(near.port == 5000);
  CHECK(near.window == far.window);
  CHECK(near.window == transport::kMinPunchWindow + std::chrono::milliseconds(80));
  // A satellite link: the window stops at its maximum.
  CHECK(transport::plan_punch("198.51.100.1", "203.0.113.9", 5000, us(900000), us(800000)).window == transport::kMaxPunchWindow);
  // Two processes behind one address (hairpinning rarely works) or on loopback: no punch.
  CHECK(transport::plan_punch("203.0.113.9", "203.0.113.9", 5000, us(1), us(1)).window.count() == 0);
  CHECK(transport::plan_punch("127.0.0.1", "10.0.0.2", 5000, us(1), us(1)).window.count() == 0);
  CHECK(transport::plan_punch("127.0.0.1", "127.0.0.1", 5000, us(1), us(1), true).window.count() > 0);
}

TEST_CASE("two sockets that dial each other at once connect (TCP simultaneous open), and with nobody there it fails in bounded time",
          "[relay][punch]") {
  // Two reusable ports, as two processes' connections to the relay would have left them.
  std::string e1, e2;
  auto holder = [](std::string* error) {
    // A connection from a reusable port to a listener: the port stays bound while the punch reuses it.
    static asio::io_context io;
    static tcp::acceptor any(io, {asio::ip::make_address("127.0.0.1"), 0});
    return transport::dial_tcp("127.0.0.1", any.local_endpoint().port(), std::chrono::seconds(2), error, true);
  };
  const int a = holder(&e1), b = holder(&e2);
  REQUIRE(a >= 0);
  REQUIRE(b >= 0);
  const auto pa = transport::local_port_of(a), pb = transport::local_port_of(b);
  REQUIRE(pa != pb);
  const auto window = std::chrono::milliseconds(1500);
  int fa = -1, fb = -1;
  std::thread t([&] { fb = transport::punch_tcp(pb, {"127.0.0.1", pa, {}, window}, &e2); });
  fa = transport::punch_tcp(pa, {"127.0.0.1", pb, {}, window}, &e1);
  t.join();
  INFO(e1 + " / " + e2);
  REQUIRE(fa >= 0);
  REQUIRE(fb >= 0);
  CHECK(transport::write_all(fa, "over the punched connection\n"));
  std::string line;
  CHECK(transport::read_line(fb, &line, 100, std::chrono::seconds(2)));
  CHECK(line == "over the punched connection");
  for (int fd : {a, b, fa, fb}) ::close(fd);

  // Nobody punching back: refused again and again until the window ends, then -1 with the reason.
  const auto started = std::chrono::steady_clock::now();
  std::string error;
  CHECK(transport::punch_tcp(closed_port(), {"127.0.0.1", closed_port(), {}, std::chrono::milliseconds(300)}, &error) < 0);
  const auto took = std::chrono::steady_clock::now() - started;
  CHECK(took >= std::chrono::milliseconds(290));
  CHECK(took < std::chrono::seconds(2));
  CHECK_FALSE(error.empty());
}

TEST_CASE("a pull through the relay ends up direct when both sides can punch, and the relay carries only the handshake",
          "[relay][punch]") {
  HiddenServer hidden(true);
  std::string blob(5u << 20, '\0');
  for (std::size_t i = 0; i < blob.size(); ++i) blob[i] = static_cast<char>(i * 13 + 1);
  hidden.objects[7] = blob;
  transport::DataClient client(kToken);
  client.set_relay("127.0.0.1", hidden.relay->port(), std::chrono::milliseconds(300));
  const auto nowhere = closed_port();
  auto got = client.fetch("127.0.0.1", nowhere, 7, blob.size(), "data-node:1");
  REQUIRE(got);
  CHECK(std::string(reinterpret_cast<const char*>(got->data()), got->size()) == blob);
  const auto st = client.stats();
  CHECK(st.punched == 1);
  CHECK(st.relayed == 0);
  const auto rs = hidden.relay->stats();
  CHECK(rs.punches == 1);
  CHECK(rs.sessions == 1);
  CHECK(rs.bytes < 1000);  // two PEER lines and two bytes of agreement: the object went directly
}

TEST_CASE("without a punch window (one machine, loopback) the pair agrees on the relayed connection at once", "[relay][punch]") {
  HiddenServer hidden;
  hidden.objects[7] = "relayed bytes";
  transport::DataClient client(kToken);
  client.set_relay("127.0.0.1", hidden.relay->port(), std::chrono::milliseconds(300));
  const auto started = std::chrono::steady_clock::now();
  auto got = client.fetch("127.0.0.1", closed_port(), 7, 13, "data-node:1");
  CHECK(std::string(reinterpret_cast<const char*>(got->data()), got->size()) == "relayed bytes");
  CHECK(std::chrono::steady_clock::now() - started < std::chrono::seconds(1));
  CHECK(client.stats().relayed == 1);
  CHECK(client.stats().punched == 0);
  CHECK(hidden.relay->stats().punches == 1);
}

TEST_CASE("MEET splices two peers that chose one name, and a lone MEET, an ACCEPT for a meeting and a PUNCH to a tunnel are refused",
          "[relay][punch]") {
  asio::io_context io;
  cluster::RelayOptions o;
  o.token = kToken;
  o.bind = "127.0.0.1";
  o.hello_timeout = std::chrono::seconds(1);
  o.ask_target = [](const std::string&, const std::string&, bool) { return true; };
  cluster::RelayServer relay(o);
  // Two peers meet: each first reads its PEER line (no punch window on loopback), then bytes flow both ways.
  auto a = dial(io, relay.port(), transport::relay_hello("MEET", "ring-abc", kToken));
  auto b = dial(io, relay.port(), transport::relay_hello("MEET", "ring-abc", kToken));
  auto peer_line = [](tcp::socket& s) {
    asio::streambuf buf;
    asio::read_until(s, buf, '\n');
    std::string line(asio::buffers_begin(buf.data()), asio::buffers_end(buf.data()));
    return transport::parse_punch_line(line.substr(0, line.find('\n')));
  };
  auto pa = peer_line(a), pb = peer_line(b);
  REQUIRE(pa);
  REQUIRE(pb);
  CHECK(pa->window.count() == 0);
  asio::write(a, asio::buffer(std::string("to b")));
  CHECK(read_n(b, 4) == "to b");
  CHECK(relay.stats().punches == 1);
  // An ACCEPT naming a meeting cannot join it; a MEET nobody comes to is closed after the hello timeout.
  auto lone = dial(io, relay.port(), transport::relay_hello("MEET", "ring-lonely", kToken));
  auto intruder = dial(io, relay.port(), transport::relay_hello("ACCEPT", "meet:ring-lonely", kToken));
  CHECK(closed_by_peer(intruder));  // an ACCEPT reads no line from the relay: closed only
  CHECK(refusal_then_closed(lone) == "nobody-came");
  // A tunnel's far end is a local port: nobody there to punch with.
  auto tunnel = dial(io, relay.port(), transport::relay_hello("PUNCH", "tunnel:n1:8888", kToken));
  CHECK(refusal_then_closed(tunnel) == "not-punchable");
  CHECK(relay.stats().refused == 3);
}

TEST_CASE("a relay told later that a target is unknown closes the waiting dialer at once, and nothing else", "[relay]") {
  // An operator's relay (iogrid node --relay) says yes to every ask and forwards it to the head; the head's
  // refusal comes back through drop().
  asio::io_context io;
  std::mutex m;
  std::vector<std::string> sessions;
  cluster::RelayOptions o;
  o.token = kToken;
  o.bind = "127.0.0.1";
  o.hello_timeout = std::chrono::seconds(10);
  o.ask_target = [&](const std::string&, const std::string& session, bool) {
    std::lock_guard<std::mutex> g(m);
    sessions.push_back(session);
    return true;
  };
  cluster::RelayServer relay(o);
  auto unknown = dial(io, relay.port(), transport::relay_hello("CONNECT", "job-404", kToken));
  auto known = dial(io, relay.port(), transport::relay_hello("CONNECT", "job-1", kToken));
  auto session_of = [&](std::size_t i) {
    for (int t = 0; t < 200; ++t) {
      {
        std::lock_guard<std::mutex> g(m);
        if (sessions.size() > i) return sessions[i];
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return std::string();
  };
  const auto first = session_of(0), second = session_of(1);
  REQUIRE(!first.empty());
  REQUIRE(!second.empty());
  // The first session asked about is dropped, whichever dialer it belongs to (they may arrive in either order).
  relay.drop("no-such-session", "ignored");  // nothing waits under it: no effect
  const auto t0 = std::chrono::steady_clock::now();
  relay.drop(first, "no process 'x' to relay to");
  // Exactly one of the two dialers is closed, well before the 10 s timeout; the other still waits, and its
  // target can still dial in and be spliced to it.
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  auto is_closed = [](tcp::socket& s) {
    s.non_blocking(true);
    char c;
    boost::system::error_code ec;
    s.read_some(asio::buffer(&c, 1), ec);
    s.non_blocking(false);
    return ec == asio::error::eof || ec == asio::error::connection_reset;
  };
  const bool unknown_closed = is_closed(unknown), known_closed = is_closed(known);
  CHECK(unknown_closed != known_closed);
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(2));
  CHECK(relay.stats().refused == 1);
  auto& waiting = unknown_closed ? known : unknown;
  auto target = dial(io, relay.port(), transport::relay_hello("ACCEPT", second, kToken));
  asio::write(target, asio::buffer(std::string("pong")));
  CHECK(read_n(waiting, 4) == "pong");
  CHECK(relay.stats().sessions == 1);
}

TEST_CASE("the relay's refusals are typed for those who read a line from it, and closed only for the others", "[relay][punch]") {
  const auto line = transport::relay_refusal("no-target", "no process 'job-9'\nto relay to");
  REQUIRE(line.back() == '\n');
  CHECK(std::count(line.begin(), line.end(), '\n') == 1);  // the reason stays on its line
  auto r = transport::parse_relay_refusal(line.substr(0, line.size() - 1));
  REQUIRE(r);
  CHECK(r->code == "no-target");
  CHECK(r->reason == "no process 'job-9' to relay to");
  CHECK_FALSE(transport::parse_relay_refusal("IOGRID-RELAY/1 PEER 1.2.3.4 5 0 0"));
  CHECK_FALSE(transport::parse_relay_refusal("IOGRID-RELAY/1 REFUSED "));

  asio::io_context io;
  cluster::RelayOptions o;
  o.token = kToken;
  o.bind = "127.0.0.1";
  o.hello_timeout = std::chrono::seconds(1);
  o.ask_target = [](const std::string& target, const std::string&, bool) { return target == "job-1"; };
  cluster::RelayServer relay(o);
  // The punching dialer learns why: an unknown target, a target that never dials in.
  auto unknown = transport::relay_connect("127.0.0.1", relay.port(), "job-404", kToken, true, std::chrono::seconds(2));
  CHECK(unknown.fd < 0);
  CHECK(unknown.reached);
  CHECK(unknown.refused == "no-target");
  CHECK(unknown.error.find("no process 'job-404'") != std::string::npos);
  auto silent = transport::relay_connect("127.0.0.1", relay.port(), "job-1", kToken, true, std::chrono::seconds(2));
  CHECK(silent.refused == "no-answer");
  // A plain CONNECT reads the peer's protocol next: closed with no line.
  auto plain = dial(io, relay.port(), transport::relay_hello("CONNECT", "job-404", kToken));
  CHECK(closed_by_peer(plain));
  CHECK(relay.stats().refused == 3);
}
