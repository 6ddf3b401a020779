// The head's relay (runtime/cluster/relay_server.hpp): signed first lines only, a dialer spliced to the target
// it names once the target dials in, bytes both ways (early ones included), limits, refusals.
#include <catch2/catch.hpp>

#include <boost/asio.hpp>
#include <chrono>
#include <future>
#include <thread>

#include "runtime/cluster/relay_server.hpp"
#include "runtime/transport/relay_hello.hpp"

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
  o.ask_target = [&](const std::string& target, const std::string& session) {
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
  o.ask_target = [&](const std::string& target, const std::string& session) {
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
