// The wire: frames, the token handshake, and a head that survives garbage.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <catch2/catch.hpp>

#include <algorithm>
#include <random>

#include "local_cluster.hpp"
#include "runtime/transport/auth.hpp"
#include "runtime/transport/frame.hpp"

using namespace std::chrono_literals;
using namespace iogrid::runtime::transport;

namespace {

std::string hello_frame(std::uint32_t version) {
  capnp::MallocMessageBuilder msg;
  auto h = msg.initRoot<iogrid::proto::Envelope>().initHello();
  h.setProtocolVersion(version);
  h.setRole(iogrid::proto::Role::NODE);
  h.setName("probe");
  std::string nonce(32, 'n');
  h.setClientNonce(kj::arrayPtr(reinterpret_cast<const kj::byte*>(nonce.data()), nonce.size()));
  return encode_frame(msg);
}

struct RawConnection {
  int fd = -1;
  explicit RawConnection(int port) {
    fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<std::uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    timeval tv{5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
  ~RawConnection() { close(fd); }
  void send_bytes(const std::string& s) { (void)::send(fd, s.data(), s.size(), MSG_NOSIGNAL); }
  // Reads until the server closes the connection (or 5 s pass); returns what arrived.
  std::string read_until_closed(bool* closed) {
    std::string out;
    char buf[4096];
    for (;;) {
      auto n = recv(fd, buf, sizeof buf, 0);
      if (n == 0) {
        *closed = true;
        return out;
      }
      if (n < 0) {
        *closed = false;
        return out;
      }
      out.append(buf, static_cast<std::size_t>(n));
    }
  }
  // Reads until `what` has arrived (true) or `limit` passes (false); `out` gathers everything read.
  bool read_until(const std::string& what, std::string& out, std::chrono::milliseconds limit) {
    const auto until = std::chrono::steady_clock::now() + limit;
    char buf[4096];
    while (out.find(what) == std::string::npos) {
      if (std::chrono::steady_clock::now() >= until) return false;
      auto n = recv(fd, buf, sizeof buf, 0);
      if (n == 0) return false;
      if (n > 0) out.append(buf, static_cast<std::size_t>(n));
    }
    return true;
  }
};

}  // namespace

TEST_CASE("frames: partial input, size limits, malformed content", "[wire]") {
  capnp::MallocMessageBuilder msg;
  msg.initRoot<iogrid::proto::Envelope>().initReject().setReason("hello");
  auto frame = encode_frame(msg);
  FrameDecoder d;
  d.feed(frame.data(), 3);
  CHECK(d.next() == nullptr);
  d.feed(frame.data() + 3, frame.size() - 3);
  auto f = d.next();
  REQUIRE(f);
  CHECK(std::string(f->envelope().getReject().getReason()) == "hello");

  FrameDecoder big;
  std::string huge = "\xf0\xff\xff\xff";
  big.feed(huge.data(), huge.size());
  CHECK_THROWS_AS(big.next(), FrameError);

  FrameDecoder odd;
  std::string bad_len("\x05\x00\x00\x00", 4);
  odd.feed(bad_len.data(), bad_len.size());
  CHECK_THROWS_AS(odd.next(), FrameError);

  FrameDecoder junk;
  std::string garbage("\x10\x00\x00\x00\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", 20);
  junk.feed(garbage.data(), garbage.size());
  auto g = junk.next();
  REQUIRE(g);
  CHECK_THROWS_AS(g->envelope(), FrameError);
}

TEST_CASE("handshake proofs depend on the token, both nonces, the role and the name", "[wire]") {
  auto cn = random_bytes(32), sn = random_bytes(32);
  auto p = client_proof("token-aaaaaaaaaaaa", sn, cn, 0, "n1");
  CHECK(p == client_proof("token-aaaaaaaaaaaa", sn, cn, 0, "n1"));
  CHECK(p != client_proof("token-bbbbbbbbbbbb", sn, cn, 0, "n1"));
  CHECK(p != client_proof("token-aaaaaaaaaaaa", random_bytes(32), cn, 0, "n1"));
  CHECK(p != client_proof("token-aaaaaaaaaaaa", sn, cn, 1, "n1"));
  CHECK(p != client_proof("token-aaaaaaaaaaaa", sn, cn, 0, "n2"));
  CHECK(server_proof("token-aaaaaaaaaaaa", cn, sn) != p);
  CHECK(equal_constant_time(p, p));
  CHECK_FALSE(equal_constant_time(p, p.substr(1)));
}

TEST_CASE("the head survives garbage, oversized frames and a wrong protocol version", "[cluster][wire]") {
  iogrid::test::LocalCluster c;
  std::mt19937 rng(7);
  {
    RawConnection r(c.port());
    std::string junk(5000, '\0');
    for (auto& ch : junk) ch = static_cast<char>(rng());
    r.send_bytes(junk);
    bool closed = false;
    r.read_until_closed(&closed);
    CHECK(closed);
  }
  {
    RawConnection r(c.port());
    r.send_bytes(std::string("\xf0\xff\xff\x7f", 4) + std::string(1000, 'A'));  // claims a 2 GiB frame
    bool closed = false;
    r.read_until_closed(&closed);
    CHECK(closed);
  }
  {
    RawConnection r(c.port());
    r.send_bytes(hello_frame(iogrid::proto::PROTOCOL_VERSION));
    r.send_bytes(std::string("\x08\x00\x00\x00garbage!", 12));  // a well-sized frame that is not a message
    bool closed = false;
    r.read_until_closed(&closed);
    CHECK(closed);
  }
  {
    RawConnection r(c.port());
    r.send_bytes(hello_frame(999));
    bool closed = false;
    auto reply = r.read_until_closed(&closed);
    CHECK(closed);
    CHECK(reply.find("protocol version mismatch") != std::string::npos);
  }
  {
    RawConnection r(c.port());  // opens a connection and says nothing, while others keep working
    c.add_node("n1", {"--num-cpus", "2"});
    REQUIRE(c.wait_nodes(1));
    auto& d = c.driver({"crash"});
    INFO(c.logs());
    CHECK(d.wait(120s) == 0);
  }
  auto log = c.head().output();
  CHECK(log.find("closing connection") != std::string::npos);
  CHECK(log.find("exceeds the limit") != std::string::npos);
  CHECK(log.find("protocol version mismatch") != std::string::npos);
}

namespace {
// One HTTP/1.1 GET on 127.0.0.1:port, logged in with `key` when given; returns the whole response (status
// line, headers, body).
std::string http_get(int port, const std::string& path, const std::string& key = "") {
  RawConnection r(port);
  r.send_bytes("GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n" +
               (key.empty() ? std::string() : "Authorization: Bearer " + key + "\r\n") + "\r\n");
  bool closed = false;
  return r.read_until_closed(&closed);
}
}  // namespace

TEST_CASE("the head's dashboard serves a status page, JSON and Prometheus metrics", "[cluster][dashboard]") {
  iogrid::test::LocalCluster c({"--dashboard-port", "0"});
  REQUIRE(c.dashboard_port() > 0);
  c.add_node("n1", {"--num-cpus", "2", "--gpus", "A100:40:8.0"});
  REQUIRE(c.wait_nodes(1));
  std::string status;
  bool seen = iogrid::test::eventually([&] {
    status = http_get(c.dashboard_port(), "/api/status", c.read_token());
    return status.find("\"n1\"") != std::string::npos;
  }, 5s);
  INFO(status);
  REQUIRE(seen);
  CHECK(status.find("200 OK") != std::string::npos);
  auto body = nlohmann::json::parse(status.substr(status.find("\r\n\r\n") + 4));
  CHECK(body["nodes"][0]["gpus"][0]["model"] == "A100");
  auto metrics = http_get(c.dashboard_port(), "/metrics");
  CHECK(metrics.find("iogrid_nodes{state=\"alive\"} 1") != std::string::npos);
  CHECK(metrics.find("iogrid_node_cpus{node=\"n1\",kind=\"total\"} 2") != std::string::npos);
  CHECK(http_get(c.dashboard_port(), "/").find("<title>iogrid</title>") != std::string::npos);
  CHECK(http_get(c.dashboard_port(), "/nope").find("404") != std::string::npos);
  // The status needs a login; the explorer is public and names no host.
  CHECK(http_get(c.dashboard_port(), "/api/v1/status").find("401 Unauthorized") != std::string::npos);
  CHECK(http_get(c.dashboard_port(), "/api/v1/status", "not-the-token").find("401 Unauthorized") != std::string::npos);
  auto explorer = http_get(c.dashboard_port(), "/api/v1/explorer");
  CHECK(explorer.find("200 OK") != std::string::npos);
  CHECK(explorer.find("\"model\":\"A100\"") != std::string::npos);
  CHECK(explorer.find("\"n1\"") == std::string::npos);
}

TEST_CASE("posted prices: each GPU market starts at its nodes' median ask, moves by the controller each round, is quoted, public and kept across a restart",
          "[cluster][dashboard][pricing]") {
  iogrid::test::LocalCluster c({"--dashboard-port", "0", "--pricing-round-ms", "300"});
  // The 3.0 node first: a round may fall between the two registrations, and the market starts at the median ask of
  // the nodes it knows then; {3} and {3, 2} both have 3 as their (upper) median.
  c.add_node("a2", {"--num-cpus", "2", "--gpus", "A100:40x2", "--price", "3.0", "--labels", "region=eu"});
  REQUIRE(c.wait_nodes(1));
  c.add_node("a1", {"--num-cpus", "2", "--gpus", "A100:40x2", "--price", "2.0", "--labels", "region=eu"});
  c.add_node("r1", {"--num-cpus", "2", "--gpus", "RTX4090:24", "--price", "0.4"});
  REQUIRE(c.wait_nodes(3));
  auto market = [&](std::vector<std::string> extra = {}) {
    std::vector<std::string> args{"market", "--json", "--history", "100"};
    args.insert(args.end(), extra.begin(), extra.end());
    auto& p = c.command(args);
    REQUIRE(p.wait(30s) == 0);
    return nlohmann::json::parse(p.output().substr(p.output().find('{')));
  };
  auto find = [](const nlohmann::json& m, const std::string& name) {
    for (const auto& mk : m["markets"])
      if (mk["market"] == name) return mk;
    return nlohmann::json();
  };
  // Idle markets fall by the largest step each round (utilisation 0, nothing waiting).
  REQUIRE(iogrid::test::eventually([&] { return find(market(), "A100/eu")["history"].size() >= 4; }, 20s));
  const auto m = market();
  const auto a100 = find(m, "A100/eu"), rtx = find(m, "RTX4090/any");
  INFO(m.dump(2));
  REQUIRE(rtx.is_object());
  const auto& h = a100["history"];
  // The median ask of {3} or {3, 2} is 3, then -12.5% a round, but never below the lowest ask: 3.0 while only a2
  // is known, 2.0 once a1 is (below it nobody sells).
  const double first = h[0]["price"].get<double>();
  CHECK((first == Approx(3.0) || first == Approx(3.0 * 0.875)));
  for (std::size_t i = 1; i < h.size(); ++i) {
    const double before = h[i - 1]["price"].get<double>(), now = h[i]["price"].get<double>();
    if (before == Approx(3.0) && now == Approx(3.0)) continue;  // a1 not counted yet
    CHECK(now == Approx(std::max(before * 0.875, 2.0)));
  }
  CHECK(h.back()["price"].get<double>() < 3.0);
  CHECK(h.back()["utilisation"].get<double>() == 0);
  CHECK(rtx["price"].get<double>() == Approx(0.4));  // its only provider's ask
  CHECK(m["rules"]["max_step"] == 0.125);
  CHECK(m["tiers"]["urgent"]["multiplier"] == 1.5);
  // A quote: the tier's price, the total, whether the ceiling covers it.
  const auto q = market({"--quote", "--model", "A100", "--region", "eu", "--gpus", "2", "--hours", "3", "--tier", "urgent",
                         "--max-price", "0.01"})["quote"];
  CHECK(q["price_per_gpu_hour"].get<double>() == Approx(1.5 * q["posted"].get<double>()));
  CHECK(q["posted"].get<double>() < 3.0 * 0.875);
  CHECK(q["total"].get<double>() == Approx(q["price_per_gpu_hour"].get<double>() * 6));
  CHECK_FALSE(q["within_max_price"].get<bool>());
  auto& bad = c.command({"market", "--quote", "--model", "V100"});
  CHECK(bad.wait(30s) != 0);
  CHECK(bad.output().find("no market 'V100/any'") != std::string::npos);
  // Public on the dashboard, with a quote from the query.
  const auto web = http_get(c.dashboard_port(), "/api/v1/market?model=RTX4090&gpus=1&hours=1&tier=spot");
  INFO(web);
  REQUIRE(web.find("200 OK") != std::string::npos);
  const auto body = nlohmann::json::parse(web.substr(web.find("\r\n\r\n") + 4));
  CHECK(body["quote"]["tier"] == "spot");
  CHECK(body["quote"]["price_per_gpu_hour"].get<double>() == Approx(0.6 * body["quote"]["posted"].get<double>()));
  CHECK(body["quote"]["posted"].get<double>() == Approx(find(body, "RTX4090/any")["price"].get<double>()));
  // Kept with the head's state.
  const double before = find(market(), "A100/eu")["price"].get<double>();
  std::this_thread::sleep_for(500ms);
  c.head().kill(SIGKILL);
  c.start_head({"--port", std::to_string(c.port()), "--pricing-round-ms", "3600000"});
  const auto after = find(market(), "A100/eu");
  REQUIRE(after.is_object());
  CHECK(after["price"].get<double>() <= before);
  CHECK(after["price"].get<double>() >= 0.05);
  CHECK(after["history"].size() >= 4);
}

TEST_CASE("the head's history (node and job events, cluster totals) is served under /api/v1 and survives a restart",
          "[cluster][dashboard]") {
  iogrid::test::LocalCluster c({"--dashboard-port", "0", "--history", "interval=200ms"});
  c.add_node("n1", {"--num-cpus", "2"});
  REQUIRE(c.wait_nodes(1));
  auto json_of = [&](const std::string& path) {
    auto r = http_get(c.dashboard_port(), path, c.read_token());
    return nlohmann::json::parse(r.substr(r.find("\r\n\r\n") + 4));
  };
  auto node_events = [&] { return json_of("/api/v1/events?kind=node&subject=n1")["events"]; };
  REQUIRE(iogrid::test::eventually([&] { return !node_events().empty(); }, 5s));
  CHECK_THAT(node_events().back()["detail"].get<std::string>(), Catch::StartsWith("joined from"));
  auto alive = [&] { return json_of("/api/v1/history?series=cluster%2Fnodes_alive")["points"]; };
  REQUIRE(iogrid::test::eventually([&] { auto p = alive(); return !p.empty() && p.back()[1] == 1.0; }, 5s));
  const auto points_before = alive().size();
  std::this_thread::sleep_for(1500ms);  // the head writes its history each second

  c.head().kill(SIGKILL);
  c.start_head({"--port", std::to_string(c.port())});
  REQUIRE(c.wait_nodes(1));
  INFO(c.logs());
  // What was recorded before the kill is still there, and the rejoin is added.
  CHECK(alive().size() >= points_before);
  REQUIRE(iogrid::test::eventually([&] { return node_events().size() >= 2; }, 5s));
  auto events = node_events();
  CHECK_THAT(events[0]["detail"].get<std::string>(), Catch::StartsWith("rejoined from"));
  CHECK_THAT(events.back()["detail"].get<std::string>(), Catch::StartsWith("joined from"));
}

TEST_CASE("the dashboard's event stream sends the status at once and a node's death as it happens", "[cluster][dashboard]") {
  iogrid::test::LocalCluster c({"--dashboard-port", "0"});
  c.add_node("n1", {"--num-cpus", "2"});
  c.add_node("n2", {"--num-cpus", "2"});
  REQUIRE(c.wait_nodes(2));
  RawConnection stream(c.dashboard_port());
  stream.send_bytes("GET /api/v1/stream?view=full HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n"
                    "Authorization: Bearer " + c.read_token() + "\r\n\r\n");
  std::string got;
  REQUIRE(stream.read_until("\"node_totals\":{\"active_leases\":0,\"count\":2", got, 5s));
  CHECK(got.find("Content-Type: text/event-stream") != std::string::npos);
  CHECK(got.find("event: status\ndata: {") != std::string::npos);
  // The stream carries the status without its nodes (their totals: small at any size); pages of nodes come
  // from /api/v1/nodes, one node by its exact name.
  CHECK(got.find("\"n2\"") == std::string::npos);
  const auto one = http_get(c.dashboard_port(), "/api/v1/nodes?name=n2", c.read_token());
  CHECK(one.find("\"total\":1") != std::string::npos);
  CHECK(one.find("\"name\":\"n2\"") != std::string::npos);
  // Other requests are answered while the stream stays open.
  CHECK(http_get(c.dashboard_port(), "/api/v1/status", c.read_token()).find("200 OK") != std::string::npos);
  // The full stream needs a login; the public one carries explorer documents.
  CHECK(http_get(c.dashboard_port(), "/api/v1/stream?view=full").find("401 Unauthorized") != std::string::npos);
  RawConnection pub(c.dashboard_port());
  pub.send_bytes("GET /api/v1/stream HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
  std::string pub_got;
  REQUIRE(pub.read_until("event: explorer\ndata: {", pub_got, 5s));
  got.clear();
  const auto t0 = std::chrono::steady_clock::now();
  c.node("n2").kill(SIGKILL);
  REQUIRE(stream.read_until("\"subject\":\"n2\"", got, 10s));
  INFO(got);
  CHECK(got.find("event: event") != std::string::npos);
  CHECK(got.find("dead: ") != std::string::npos);
  // The node is declared dead within 3 s of its death; the stream carries it on at once.
  CHECK(std::chrono::steady_clock::now() - t0 < 5s);
}

TEST_CASE("the versioned status carries an ETag and answers 304 when the client already has it", "[cluster][dashboard]") {
  iogrid::test::LocalCluster c({"--dashboard-port", "0"});
  c.add_node("n1", {"--num-cpus", "2"});
  REQUIRE(c.wait_nodes(1));
  auto first = http_get(c.dashboard_port(), "/api/v1/status", c.read_token());
  const auto at = first.find("ETag: ");
  REQUIRE(at != std::string::npos);
  const auto tag = first.substr(at + 6, first.find("\r\n", at) - at - 6);
  RawConnection again(c.dashboard_port());
  again.send_bytes("GET /api/v1/status HTTP/1.1\r\nHost: 127.0.0.1\r\nIf-None-Match: " + tag +
                   "\r\nAuthorization: Bearer " + c.read_token() + "\r\nConnection: close\r\n\r\n");
  bool closed = false;
  auto second = again.read_until_closed(&closed);
  // Unchanged (uptime counters aside, the status of an idle cluster holds still for a moment): 304, or 200 with
  // a new tag when something moved in between.
  if (second.find("304 Not Modified") == std::string::npos) CHECK(second.find("ETag: " + tag) == std::string::npos);
  else CHECK(second.find("\r\n\r\n{") == std::string::npos);
}

TEST_CASE("with TLS every connection needs a certificate from the cluster CA", "[cluster][tls]") {
  iogrid::test::LocalCluster c{iogrid::test::LocalCluster::Tls{}};
  c.add_node("n1", {"--num-cpus", "2"});
  c.add_node("n2", {"--num-cpus", "2"});
  REQUIRE(c.wait_nodes(2));
  // A whole job runs over TLS, large objects included (the graph moves a 400 KB argument and result).
  c.add_node("a100", {"--num-cpus", "1", "--gpus", "A100:40:8.0x2"});
  c.add_node("rtx", {"--num-cpus", "1", "--gpus", "RTX4090:24:8.9"});
  c.add_node("cpu", {"--num-cpus", "1", "--labels", "region=eu"});
  REQUIRE(c.wait_nodes(5));
  // (the graph scenario expects exactly three nodes: run the objects scenario instead)
  auto& d = c.driver({"objects", std::to_string(4u << 20)});
  int rc = d.wait(120s);
  INFO(d.output() + "\n" + c.logs());
  REQUIRE(rc == 0);
  // A node without TLS, and one whose certificate another CA signed, do not get in.
  iogrid::test::Process plain({IOGRID_CLI_PATH, "node", "--address", c.address(), "--token-file", c.token_file(), "--name",
                               "plain"},
                              {{"IOGRID_TLS_CERT", ""}, {"IOGRID_TLS_KEY", ""}, {"IOGRID_TLS_CA", ""}},
                              (c.dir() / "plain.log").string());
  c.make_certificates("rogue-ca", {"rogue"});
  auto d2 = c.dir().string() + "/";
  iogrid::test::Process rogue({IOGRID_CLI_PATH, "node", "--address", c.address(), "--token-file", c.token_file(), "--name",
                               "rogue", "--tls-cert", d2 + "rogue.pem", "--tls-key", d2 + "rogue.key", "--tls-ca", d2 + "ca.pem"},
                              {}, (c.dir() / "rogue.log").string());
  std::this_thread::sleep_for(2s);
  CHECK(c.status()["nodes"].size() == 5);
  auto head = c.head().output();
  CHECK(head.find("TLS") != std::string::npos);
}
