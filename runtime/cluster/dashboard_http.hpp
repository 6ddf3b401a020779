// The dashboard's answers to HTTP requests, apart from its sockets (DashboardApi: a function of the request,
// the head's sources and the logins it holds), and the parser limits the server applies;
// tests/fuzz/fuzz_http.cpp drives both.
//
// Routes (times are Unix milliseconds; a bad parameter answers 400 naming it):
//   public  /, /assets/*            the web UI (ui/, embedded at build time; a plain page in a build without Node)
//           /api/v1/session         {login_required, user, csrf}
//           /api/v1/explorer        the network in public: supply by GPU model and region, prices, verification,
//                                   reservations and their health, utilisation (no host names, no jobs)
//           /api/v1/market          posted prices per GPU model and region with their history (?points=60), the
//                                   controller's rules and the tiers; ?model=&region=&gpus=&hours=&tier=&max_price=
//                                   adds a quote (scheduler/pricing.hpp)
//           /api/v1/series?prefix=cluster/  and  /api/v1/history?series=cluster/...   cluster totals over time
//           /api/v1/stream          server-sent events: `explorer` documents (public), or with ?view=full and
//                                   a login, `status` summaries (the status without its nodes; their totals
//                                   in node_totals) and `event`s
//           /metrics                Prometheus text
//           POST /api/v1/login {key}      the cluster token (user "operator") or a user key (`iogrid ui-key`):
//                                   a session cookie (HttpOnly, SameSite=Strict) and the CSRF token
//           POST /api/v1/logout
//   login   /api/v1/status, /api/status   the status document (ETag; 304 when unchanged)
//           /api/v1/nodes?[offset][&limit][&q=TEXT][&name=N][&model=M][&region=R]   a page of nodes
//             (q: within the name, host, GPU models or labels; name: that node only)
//           /api/v1/series, /api/v1/history (any series), /api/v1/events?[kind][&subject][&q][&from][&to][&before][&limit]
//           /api/v1/reservations (GET; POST {gpus, gpu_model, region, max_price, min_reputation, duration_s, ...};
//                                DELETE /api/v1/reservations/ID): the head's cluster.* commands, same errors as the CLI
//           /api/v1/ledger          the head's ledger
//           /api/v1/tasks?job=J[&after=MS][&limit=N]   a job's tasks as its owners report them: counts by kind and
//                                   state, duration histogram, spans [name, node, start_ms, end_ms, ok, kind], failures
//           /api/v1/actors?[job=J][&state=pending|alive|restarting|dead][&q=TEXT][&offset][&limit]   actors as their
//                                   owners report them: {total, states, actors: [{job, id, name, state, node, restarts, error, since_ms}]}
//           /api/v1/logs?job=J[&q=TEXT][&offset=BYTES][&tail=LINES]   a job's output; `offset` follows it
// "login" means: a session cookie from /api/v1/login, or `Authorization: Bearer KEY`; with no token and no keys
// configured (an embedded cluster's dashboard) nobody needs to log in. A call that changes state (POST,
// DELETE) made with a cookie must carry the session's CSRF token in `X-IOGrid-CSRF`, and an `Origin`, when
// sent, must name this server: another site's page cannot make the browser act for its user.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

#include "runtime/head/history.hpp"

namespace iogrid::runtime::cluster {

inline constexpr std::uint32_t kHttpHeaderLimit = 8 * 1024;
inline constexpr std::uint64_t kHttpBodyLimit = 64 * 1024;

// What the head offers its dashboard. Called from the dashboard's thread.
struct DashboardSource {
  std::function<std::string()> status;  // the status document (JSON text); may throw
  std::function<nlohmann::json()> status_json;  // the same, parsed (optional: saves a parse of a large head's document)
  // An operator command run on the head's thread (cluster.create|list|delete, ledger, logs {job}), as `who`:
  // the answer's JSON text; throws with the user-facing reason. Empty: those routes answer 503.
  std::function<std::string(const std::string& command, const std::string& args_json, const std::string& who)> admin;
  std::shared_ptr<head::History> history;  // thread-safe; empty: the history routes answer 404
};

struct DashboardAccess {
  std::string token;      // the cluster token: logs in as "operator"
  std::string keys_file;  // user keys, one "NAME KEY" per line (iogrid ui-key add), read at each login
  bool open() const { return token.empty() && keys_file.empty(); }  // nobody needs to log in
};

// What the dashboard serves of the head's status, built in the background (a large head's document takes a
// while): the status document, parsed, the explorer's document, an ETag.
struct StatusSnapshot {
  // A node as /api/v1/nodes filters and pages it: the fields it filters on, the node's JSON ready to send.
  struct NodeRow {
    std::string name_lower, host, region, json;
    std::string search;  // what ?q= matches (lower case): name, host, GPU models, labels as k=v
    std::vector<std::string> models;
  };
  std::string text;
  // The status without its nodes (their totals instead): what a console tab's stream carries, small at any
  // size of cluster; the tab pages the nodes it shows through /api/v1/nodes.
  std::string summary;
  nlohmann::json doc;
  std::vector<NodeRow> nodes;
  std::string explorer;
  std::string etag;
  std::int64_t built_unix_ms = 0;
  double build_ms = 0;
};

// Thread-safe: the server answers requests on a small pool, so a slow one (a history query, a command the
// head is busy with) holds up nobody else.
class DashboardApi {
 public:
  using Request = boost::beast::http::request<boost::beast::http::string_body>;
  using Response = boost::beast::http::response<boost::beast::http::string_body>;

  DashboardApi(DashboardSource source, DashboardAccess access);
  ~DashboardApi();
  DashboardApi(const DashboardApi&) = delete;
  DashboardApi& operator=(const DashboardApi&) = delete;
  Response respond(const Request& req);

  // For the event stream: who the request logged in as ("" when nobody, "-" in an open dashboard).
  std::string user_of(const Request& req) const;
  // The latest status snapshot. Rules: one thread builds it, only while someone asks (a request, an open
  // stream); a snapshot older than 250 ms is rebuilt, but no sooner than four times its last build time after
  // the last build ended (a head whose document takes 1 s to build spends at most a fifth of a core on it); a caller
  // never waits for a rebuild, except for the very first snapshot (up to 10 s; then 503).
  std::shared_ptr<const StatusSnapshot> snapshot();
  const DashboardSource& source() const { return source_; }

 private:
  struct Session {
    std::string user, csrf;
    std::int64_t expires_ms = 0;
  };
  Response route(const Request& req, const std::string& path, const std::map<std::string, std::string>& query);
  void refresh_loop();
  std::string login_user(const std::string& key) const;
  std::optional<Session> session_of(const Request& req) const;
  std::string admin(const std::string& command, const nlohmann::json& args, const std::string& who);

  DashboardSource source_;
  DashboardAccess access_;
  mutable std::mutex sessions_m_;             // requests are answered on several threads
  std::map<std::string, Session> sessions_;  // cookie value -> session
  std::string open_csrf_;                    // the CSRF token of an open dashboard
  std::mutex snap_m_;
  std::condition_variable snap_cv_;
  std::shared_ptr<const StatusSnapshot> snap_;
  std::string snap_error_;
  bool wanted_ = false, stopping_ = false;
  std::thread refresher_;
};

// "/a/b?x=1&y=%20z" -> path "/a/b", {x: "1", y: " z"} (percent-decoding, '+' as space). Throws
// std::invalid_argument on a malformed escape.
std::string split_target(const std::string& target, std::map<std::string, std::string>& query);

// The explorer's document (see /api/v1/explorer) from a status document and the live reservations.
nlohmann::json explorer_document(const nlohmann::json& status, const nlohmann::json& reservations);

}  // namespace iogrid::runtime::cluster
