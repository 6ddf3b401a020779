// DashboardApi: the routes of dashboard_http.hpp. Runs on the dashboard's one thread.
#include <algorithm>
#include <chrono>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <stdexcept>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "iogrid/core/errors.hpp"
#include "runtime/cluster/dashboard_http.hpp"
#include "runtime/cluster/status_json.hpp"
#include "runtime/cluster/ui_assets.hpp"

namespace iogrid::runtime::cluster {

namespace http = boost::beast::http;

namespace {

constexpr std::int64_t kSessionMs = 12 * 3600 * 1000;  // a login lasts 12 hours
constexpr std::size_t kMaxSessions = 10'000;

struct BadRequest : std::runtime_error {
  using std::runtime_error::runtime_error;
};
struct HttpError : std::runtime_error {
  http::status status;
  HttpError(http::status s, const std::string& what) : std::runtime_error(what), status(s) {}
};

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string percent_decode(const std::string& s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+') out += ' ';
    else if (s[i] != '%') out += s[i];
    else {
      const bool room = i + 2 < s.size();
      const int hi = room ? hex_value(s[i + 1]) : -1, lo = room ? hex_value(s[i + 2]) : -1;
      if (hi < 0 || lo < 0) throw std::invalid_argument("malformed percent escape in the query");
      out += static_cast<char>(hi * 16 + lo);
      i += 2;
    }
  }
  return out;
}

// A query parameter as an integer, `fallback` when absent; 400 when it is not one.
std::int64_t int_param(const std::map<std::string, std::string>& q, const std::string& name, std::int64_t fallback,
                       std::int64_t lo = INT64_MIN, std::int64_t hi = INT64_MAX) {
  auto it = q.find(name);
  if (it == q.end() || it->second.empty()) return fallback;
  std::size_t used = 0;
  long long v = 0;
  try {
    v = std::stoll(it->second, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != it->second.size() || used == 0 || v < lo || v > hi)
    throw BadRequest("parameter '" + name + "' must be an integer in " + std::to_string(lo) + ".." + std::to_string(hi));
  return v;
}

std::string param(const std::map<std::string, std::string>& q, const std::string& name) {
  auto it = q.find(name);
  return it == q.end() ? std::string() : it->second;
}

std::int64_t unix_ms_now() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string dump(const nlohmann::json& j) { return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace); }

std::string random_hex(std::size_t bytes) {
  std::string raw(bytes, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(raw.data()), static_cast<int>(bytes)) != 1)
    throw std::runtime_error("no randomness for a session");
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (unsigned char c : raw) {
    out += digits[c >> 4];
    out += digits[c & 15];
  }
  return out;
}

bool same_secret(const std::string& a, const std::string& b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

bool contains_ci(const std::string& hay, const std::string& needle) {
  return needle.empty() || lower(hay).find(lower(needle)) != std::string::npos;
}

std::string cookie_value(const DashboardApi::Request& req, const std::string& name) {
  const auto header = std::string(req[http::field::cookie]);
  std::size_t pos = 0;
  while (pos < header.size()) {
    auto end = header.find(';', pos);
    if (end == std::string::npos) end = header.size();
    auto part = header.substr(pos, end - pos);
    const auto first = part.find_first_not_of(' ');
    if (first != std::string::npos) part = part.substr(first);
    if (part.rfind(name + "=", 0) == 0) return part.substr(name.size() + 1);
    pos = end + 1;
  }
  return {};
}

std::string bearer(const DashboardApi::Request& req) {
  const auto auth = std::string(req[http::field::authorization]);
  return auth.rfind("Bearer ", 0) == 0 ? auth.substr(7) : std::string();
}

std::string history_json(head::History& h, const std::string& path, const std::map<std::string, std::string>& q,
                         bool public_only) {
  nlohmann::json out;
  if (path == "/api/v1/series") {
    auto prefix = param(q, "prefix");
    if (public_only && prefix.rfind("cluster/", 0) != 0)
      throw HttpError(http::status::unauthorized, "log in to see series other than cluster/ (POST /api/v1/login)");
    out["series"] = h.series(prefix);
  } else if (path == "/api/v1/history") {
    const auto name = param(q, "series");
    if (name.empty()) throw BadRequest("parameter 'series' is required (see /api/v1/series)");
    if (public_only && name.rfind("cluster/", 0) != 0)
      throw HttpError(http::status::unauthorized, "log in to see series other than cluster/ (POST /api/v1/login)");
    const auto now = unix_ms_now();
    constexpr std::int64_t kLatestMs = std::int64_t(1) << 53;  // far past any clock; keeps `to - 1 h` in range
    const auto to = int_param(q, "to", now, 0, kLatestMs);
    const auto from = int_param(q, "from", to - 3'600'000, -kLatestMs, kLatestMs);
    const auto points = static_cast<std::size_t>(int_param(q, "points", 1000, 1, 100'000));
    head::History::Resolution used{};
    auto pts = h.points(name, from, to, points, &used);
    out["series"] = name;
    out["resolution"] = used == head::History::raw ? "raw" : used == head::History::minute ? "minute" : "hour";
    out["columns"] = {"ts_ms", "mean", "min", "max", "count"};
    auto& rows = out["points"] = nlohmann::json::array();
    for (const auto& p : pts) rows.push_back({p.ts_ms, p.mean, p.min, p.max, p.count});
  } else {
    if (public_only) throw HttpError(http::status::unauthorized, "log in to see events (POST /api/v1/login)");
    head::EventQuery e;
    e.kind = param(q, "kind");
    e.subject_prefix = param(q, "subject");
    e.text = param(q, "q");
    e.from_ms = int_param(q, "from", 0);
    e.to_ms = int_param(q, "to", INT64_MAX);
    e.before_id = int_param(q, "before", 0, 0);
    e.limit = static_cast<std::size_t>(int_param(q, "limit", 100, 1, 10'000));
    auto& rows = out["events"] = nlohmann::json::array();
    auto events = h.events(e);
    for (const auto& ev : events)
      rows.push_back({{"id", ev.id}, {"ts_ms", ev.ts_ms}, {"kind", ev.kind}, {"subject", ev.subject}, {"detail", ev.detail}});
    out["next_before"] = events.size() == e.limit ? nlohmann::json(events.back().id) : nlohmann::json(nullptr);
  }
  return dump(out);
}

double num(const nlohmann::json& j, const char* key, double fallback = 0) {
  auto it = j.find(key);
  return it != j.end() && it->is_number() ? it->get<double>() : fallback;
}

std::string str(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

std::string region_of(const nlohmann::json& node) {
  auto it = node.find("labels");
  if (it != node.end() && it->is_object()) {
    auto r = it->find("region");
    if (r != it->end() && r->is_string()) return r->get<std::string>();
  }
  return "";
}

// j[key] as an array, by reference (an empty one when missing): large documents are not copied.
const nlohmann::json& arr(const nlohmann::json& j, const char* key) {
  static const nlohmann::json kNone = nlohmann::json::array();
  auto it = j.find(key);
  return it != j.end() && it->is_array() ? *it : kNone;
}

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

}  // namespace

std::string split_target(const std::string& target, std::map<std::string, std::string>& query) {
  const auto qm = target.find('?');
  const auto path = target.substr(0, qm);
  if (qm == std::string::npos) return path;
  std::stringstream in(target.substr(qm + 1));
  std::string part;
  while (std::getline(in, part, '&')) {
    if (part.empty()) continue;
    const auto eq = part.find('=');
    query[percent_decode(part.substr(0, eq))] = eq == std::string::npos ? std::string() : percent_decode(part.substr(eq + 1));
  }
  return path;
}

nlohmann::json explorer_document(const nlohmann::json& status, const nlohmann::json& reservations) {
  struct Supply {
    int nodes = 0, gpus = 0, verified = 0;
    double busy = 0;
    std::vector<double> prices;
  };
  std::map<std::pair<std::string, std::string>, Supply> supply;  // (model, region)
  std::map<std::string, std::vector<double>> prices;              // model -> price per GPU-hour of each GPU
  std::map<std::string, int> verification;
  double gpus = 0, busy = 0, cpus = 0, cpus_free = 0;
  int alive = 0;
  std::set<std::string> alive_names;
  const auto& nodes = arr(status, "nodes");
  for (const auto& n : nodes) {
    ++alive;
    alive_names.insert(str(n, "name"));
    cpus += num(n, "cpus");
    cpus_free += num(n, "cpus_available");
    const auto region = region_of(n);
    const double price = num(n, "price_per_gpu_hour");
    std::set<std::string> models_here;
    for (const auto& g : arr(n, "gpus")) {
      const auto model = str(g, "model");
      auto& s = supply[{model, region}];
      if (models_here.insert(model).second) s.nodes += 1;
      s.gpus += 1;
      s.verified += g.value("verified", false) ? 1 : 0;
      const double used = 1.0 - num(g, "free", 1.0);
      s.busy += used;
      s.prices.push_back(price);
      prices[model].push_back(price);
      gpus += 1;
      busy += used;
    }
    const auto v = str(n, "verification");
    if (!arr(n, "gpus").empty())
      verification[v.empty() ? "not checked" : v.rfind("passed", 0) == 0 ? "passed" : v.rfind("failed", 0) == 0 ? "failed" : v] += 1;
  }
  nlohmann::json out;
  out["generated_unix_ms"] = unix_ms_now();
  out["nodes"] = {{"alive", alive}, {"dead", status.value("dead_nodes", 0)}};
  out["utilisation"] = {{"gpus", gpus}, {"gpus_busy", busy}, {"cpus", cpus}, {"cpus_busy", cpus - cpus_free},
                        {"pending_leases", status.value("pending_leases", 0)}};
  auto& sup = out["supply"] = nlohmann::json::array();
  for (const auto& [key, s] : supply)
    sup.push_back({{"model", key.first}, {"region", key.second}, {"nodes", s.nodes}, {"gpus", s.gpus},
                   {"verified", s.verified}, {"busy", s.busy}, {"idle", s.gpus - s.busy},
                   {"price_median", median(s.prices)}});
  auto& pr = out["prices"] = nlohmann::json::array();
  for (const auto& [model, v] : prices)
    pr.push_back({{"model", model}, {"gpus", v.size()}, {"min", *std::min_element(v.begin(), v.end())},
                  {"median", median(v)}, {"max", *std::max_element(v.begin(), v.end())}});
  out["verification"] = verification;
  auto& res = out["reservations"] = nlohmann::json::array();
  for (const auto& r : reservations) {
    int nodes_total = 0, nodes_alive = 0;
    for (const auto& n : r.value("nodes", nlohmann::json::array())) {
      ++nodes_total;
      nodes_alive += alive_names.count(str(n, "node")) ? 1 : 0;
    }
    res.push_back({{"id", str(r, "id")}, {"gpus", r.value("gpus", 0)}, {"gpu_model", str(r, "gpu_model")},
                   {"region", str(r, "region")}, {"price_per_hour", num(r, "price_per_hour")},
                   {"age_s", num(r, "age_s")}, {"expires_in_s", r.value("expires_in_s", nlohmann::json(nullptr))},
                   {"nodes", nodes_total}, {"nodes_alive", nodes_alive},
                   {"health", nodes_alive == nodes_total ? "healthy" : nodes_alive == 0 ? "down" : "degraded"}});
  }
  return out;
}

DashboardApi::DashboardApi(DashboardSource source, DashboardAccess access)
    : source_(std::move(source)), access_(std::move(access)), open_csrf_(random_hex(16)) {
  refresher_ = std::thread([this] { refresh_loop(); });
}

DashboardApi::~DashboardApi() {
  {
    std::lock_guard<std::mutex> g(snap_m_);
    stopping_ = true;
  }
  snap_cv_.notify_all();
  refresher_.join();
}

void DashboardApi::refresh_loop() {
  using Steady = std::chrono::steady_clock;
  Steady::time_point next_allowed{};
  std::shared_ptr<const StatusSnapshot> retired;
  std::unique_lock<std::mutex> g(snap_m_);
  for (;;) {
    snap_cv_.wait(g, [&] { return stopping_ || wanted_; });
    if (stopping_) return;
    if (Steady::now() < next_allowed) {
      snap_cv_.wait_until(g, next_allowed, [&] { return stopping_; });
      continue;
    }
    wanted_ = false;
    g.unlock();
    auto snap = std::make_shared<StatusSnapshot>();
    std::string error;
    const auto t0 = Steady::now();
    try {
      if (source_.status_json) {
        snap->doc = source_.status_json();
        snap->text = dump(snap->doc);
      } else {
        if (!source_.status) throw std::runtime_error("this dashboard has no status source");
        snap->text = source_.status();
        snap->doc = nlohmann::json::parse(snap->text);
      }
      nlohmann::json reservations = nlohmann::json::array();
      if (source_.admin) {
        try {
          reservations = nlohmann::json::parse(source_.admin("cluster.list", "{}", "dashboard"));
        } catch (const std::exception&) {
          // a head without reservations answers nothing: none shown
        }
      }
      snap->explorer = dump(explorer_document(snap->doc, reservations));
      double cpus = 0, cpus_available = 0, store_used = 0, store_capacity = 0;
      std::int64_t gpus = 0, leases = 0;
      for (const auto& n : arr(snap->doc, "nodes")) {
        StatusSnapshot::NodeRow row{lower(str(n, "name")), lower(str(n, "host")), region_of(n), dump(n), {}};
        row.search = row.name_lower + " " + row.host;
        for (const auto& g : arr(n, "gpus")) {
          row.models.push_back(str(g, "model"));
          row.search += " " + lower(row.models.back());
        }
        if (n.contains("labels") && n["labels"].is_object())
          for (auto it = n["labels"].begin(); it != n["labels"].end(); ++it)
            if (it.value().is_string()) row.search += " " + lower(it.key() + "=" + it.value().get<std::string>());
        snap->nodes.push_back(std::move(row));
        cpus += n.value("cpus", 0.0);
        cpus_available += n.value("cpus_available", 0.0);
        gpus += static_cast<std::int64_t>(arr(n, "gpus").size());
        leases += n.value("active_leases", 0);
        store_used += n.value("object_store_used_bytes", 0.0);
        store_capacity += n.value("object_store_capacity_bytes", 0.0);
      }
      const nlohmann::json totals = {{"count", snap->nodes.size()}, {"cpus", cpus}, {"cpus_available", cpus_available},
                                     {"gpus", gpus}, {"active_leases", leases}, {"store_used_bytes", store_used},
                                     {"store_capacity_bytes", store_capacity}};
      nlohmann::json summary = nlohmann::json::object();
      if (snap->doc.is_object())
        for (auto it = snap->doc.begin(); it != snap->doc.end(); ++it)
          if (it.key() != "nodes") summary[it.key()] = it.value();
      summary["node_totals"] = totals;
      snap->summary = dump(summary);
      snap->etag = "\"" + std::to_string(std::hash<std::string>{}(snap->text)) + "\"";
      snap->built_unix_ms = unix_ms_now();
    } catch (const std::exception& e) {
      error = e.what();
    }
    const auto took = Steady::now() - t0;
    snap->build_ms = std::chrono::duration<double, std::milli>(took).count();
    next_allowed = Steady::now() + std::max<Steady::duration>(std::chrono::milliseconds(250), 4 * took);
    // The snapshot before the last one is freed here, on this thread and outside the lock (a big document takes
    // a while to free, and requests wait on the lock): by now no request still reads it.
    retired.reset();
    g.lock();
    if (error.empty()) {
      retired = std::exchange(snap_, std::move(snap));
      snap_error_.clear();
    } else {
      snap_error_ = error;
    }
    snap_cv_.notify_all();
  }
}

std::shared_ptr<const StatusSnapshot> DashboardApi::snapshot() {
  std::unique_lock<std::mutex> g(snap_m_);
  if (!snap_ || unix_ms_now() - snap_->built_unix_ms > 250) {
    wanted_ = true;
    snap_cv_.notify_all();
  }
  if (!snap_) {
    snap_error_.clear();
    snap_cv_.wait_for(g, std::chrono::seconds(10), [&] { return snap_ || !snap_error_.empty(); });
    if (!snap_)
      throw HttpError(http::status::service_unavailable,
                      snap_error_.empty() ? "the head did not answer within 10 s" : snap_error_);
  }
  return snap_;
}

std::string DashboardApi::login_user(const std::string& key) const {
  if (key.empty()) return {};
  if (!access_.token.empty() && same_secret(key, access_.token)) return "operator";
  if (access_.keys_file.empty()) return {};
  std::ifstream in(access_.keys_file);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    std::string name, k;
    if (!(ls >> name >> k) || name[0] == '#') continue;
    if (same_secret(key, k)) return name;
  }
  return {};
}

std::optional<DashboardApi::Session> DashboardApi::session_of(const Request& req) const {
  const auto id = cookie_value(req, "iogrid_session");
  if (id.empty()) return std::nullopt;
  std::lock_guard<std::mutex> g(sessions_m_);
  auto it = sessions_.find(id);
  if (it == sessions_.end() || it->second.expires_ms < unix_ms_now()) return std::nullopt;
  return it->second;
}

std::string DashboardApi::user_of(const Request& req) const {
  if (access_.open()) return "-";
  if (const auto s = session_of(req)) return s->user;
  return login_user(bearer(req));
}

std::string DashboardApi::admin(const std::string& command, const nlohmann::json& args, const std::string& who) {
  if (!source_.admin) throw HttpError(http::status::service_unavailable, "this head takes no commands from its dashboard");
  try {
    return source_.admin(command, dump(args), who);
  } catch (const std::exception& e) {
    std::string why = e.what();
    // "did not answer" is the head being busy or gone; anything else is the command's own refusal.
    throw HttpError(why.find("did not answer") != std::string::npos ? http::status::service_unavailable
                                                                     : http::status::unprocessable_entity,
                    why);
  }
}

DashboardApi::Response DashboardApi::respond(const Request& req) {
  Response res;
  res.version(req.version());
  try {
    std::map<std::string, std::string> query;
    std::string path;
    try {
      path = split_target(std::string(req.target()), query);
    } catch (const std::invalid_argument& e) {
      throw BadRequest(e.what());
    }
    res = route(req, path, query);
    res.version(req.version());
  } catch (const HttpError& e) {
    res.result(e.status);
    res.set(http::field::content_type, "application/json");
    res.body() = dump({{"error", e.what()}});
  } catch (const BadRequest& e) {
    res.result(http::status::bad_request);
    res.set(http::field::content_type, "application/json");
    res.body() = dump({{"error", std::string("bad request: ") + e.what()}});
  } catch (const std::exception& e) {
    res.result(http::status::internal_server_error);
    res.set(http::field::content_type, "application/json");
    res.body() = dump({{"error", e.what()}});
  }
  res.set("X-Content-Type-Options", "nosniff");
  res.set("X-Frame-Options", "DENY");
  res.set("Referrer-Policy", "no-referrer");
  res.keep_alive(req.keep_alive());
  res.prepare_payload();
  return res;
}

DashboardApi::Response DashboardApi::route(const Request& req, const std::string& path,
                                           const std::map<std::string, std::string>& query) {
  Response res;
  const auto method = req.method();
  auto json = [&](std::string body) {
    res.set(http::field::content_type, "application/json");
    res.set(http::field::cache_control, "no-store");
    res.body() = std::move(body);
    return res;
  };
  const auto user = user_of(req);
  auto need_login = [&] {
    if (user.empty()) throw HttpError(http::status::unauthorized, "log in first (POST /api/v1/login with the cluster token or a user key)");
  };
  const bool changes = method == http::verb::post || method == http::verb::delete_ || method == http::verb::put;
  if (changes && path != "/api/v1/login") {
    // Cross-site protection: a page of another origin cannot send this header without a CORS preflight we
    // never answer, and an Origin, when the browser sends one, must be this server.
    const auto origin = std::string(req[http::field::origin]);
    const auto host = std::string(req[http::field::host]);
    if (!origin.empty() && origin != "http://" + host && origin != "https://" + host)
      throw HttpError(http::status::forbidden, "cross-origin request refused (Origin " + origin + ")");
    const bool by_cookie = !cookie_value(req, "iogrid_session").empty() && bearer(req).empty();
    if (access_.open() || by_cookie) {
      const auto s = session_of(req);
      const auto& expected = s ? s->csrf : open_csrf_;
      if (!same_secret(std::string(req["X-IOGrid-CSRF"]), expected))
        throw HttpError(http::status::forbidden, "missing or wrong X-IOGrid-CSRF header (GET /api/v1/session gives it)");
    }
  }
  if (path == "/api/v1/login") {
    if (method != http::verb::post) throw HttpError(http::status::method_not_allowed, "POST {\"key\": ...}");
    std::string key;
    try {
      key = nlohmann::json::parse(req.body()).value("key", "");
    } catch (const std::exception&) {
      throw BadRequest("the body must be JSON: {\"key\": \"...\"}");
    }
    const auto who = login_user(key);
    if (who.empty()) throw HttpError(http::status::unauthorized, "unknown key (the cluster token, or a key from iogrid ui-key add)");
    const auto now = unix_ms_now();
    const auto id = random_hex(24);
    const Session s{who, random_hex(16), now + kSessionMs};
    {
      std::lock_guard<std::mutex> g(sessions_m_);
      for (auto it = sessions_.begin(); it != sessions_.end();)
        it = it->second.expires_ms < now ? sessions_.erase(it) : std::next(it);
      if (sessions_.size() >= kMaxSessions) sessions_.erase(sessions_.begin());
      sessions_[id] = s;
    }
    res.set(http::field::set_cookie, "iogrid_session=" + id + "; Path=/; HttpOnly; SameSite=Strict; Max-Age=" +
                                         std::to_string(kSessionMs / 1000));
    return json(dump({{"user", who}, {"csrf", s.csrf}}));
  }
  if (path == "/api/v1/logout") {
    if (method != http::verb::post) throw HttpError(http::status::method_not_allowed, "POST");
    {
      std::lock_guard<std::mutex> g(sessions_m_);
      sessions_.erase(cookie_value(req, "iogrid_session"));
    }
    res.set(http::field::set_cookie, "iogrid_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    return json("{}");
  }
  if (path == "/api/v1/reservations" || path.rfind("/api/v1/reservations/", 0) == 0) {
    need_login();
    const std::string who = user == "-" ? "ui" : "ui:" + user;
    if (method == http::verb::get && path == "/api/v1/reservations") return json(admin("cluster.list", nlohmann::json::object(), who));
    if (method == http::verb::post && path == "/api/v1/reservations") {
      nlohmann::json args;
      try {
        args = nlohmann::json::parse(req.body());
      } catch (const std::exception&) {
        throw BadRequest("the body must be a JSON object (gpus, gpu_model, region, max_price, min_reputation, duration_s, ...)");
      }
      if (!args.is_object()) throw BadRequest("the body must be a JSON object");
      res.result(http::status::created);
      return json(admin("cluster.create", args, who));
    }
    if (method == http::verb::delete_ && path.size() > 21)
      return json(admin("cluster.delete", {{"id", path.substr(21)}}, who));
    throw HttpError(http::status::method_not_allowed, "GET or POST /api/v1/reservations, DELETE /api/v1/reservations/ID");
  }
  if (method != http::verb::get && method != http::verb::head)
    throw HttpError(http::status::method_not_allowed, "only GET here");
  if (path == "/" || path == "/index.html" || path.rfind("/assets/", 0) == 0) {
    const auto* asset = ui_asset(path == "/" ? "/index.html" : path);
    if (!asset) throw HttpError(http::status::not_found, "no such file");
    res.set(http::field::content_type, asset->content_type);
    // Asset names carry their content hash: cached for good. The page itself is always asked again.
    res.set(http::field::cache_control, path.rfind("/assets/", 0) == 0 ? "public, max-age=31536000, immutable" : "no-cache");
    res.body().assign(reinterpret_cast<const char*>(asset->data), asset->size);
    return res;
  }
  if (path == "/api/v1/session")
    return json(dump({{"login_required", !access_.open()}, {"user", user == "-" ? "" : user},
                      {"logged_in", !user.empty()},
                      {"csrf", access_.open() ? open_csrf_ : session_of(req).value_or(Session{}).csrf},
                      {"ui_built", ui_built()}, {"history", source_.history != nullptr}}));
  if (path == "/api/v1/explorer") return json(snapshot()->explorer);
  if (path == "/api/v1/market") {
    // Posted prices are public, like the explorer; ?model=&region=&gpus=&hours=&tier=&max_price= adds a quote.
    nlohmann::json args{{"history", int_param(query, "points", 60, 0, 1440)}};
    if (!param(query, "model").empty()) {
      auto number = [&](const char* k, double fallback) {
        const auto v = param(query, k);
        if (v.empty()) return fallback;
        try {
          return std::stod(v);
        } catch (...) {
          throw HttpError(http::status::bad_request, std::string("?") + k + " must be a number");
        }
      };
      args["quote"] = {{"model", param(query, "model")}, {"region", param(query, "region")}, {"gpus", number("gpus", 1)},
                       {"hours", number("hours", 1)}, {"tier", param(query, "tier").empty() ? "standard" : param(query, "tier")},
                       {"max_price", number("max_price", 0)}};
    }
    return json(admin("market", args, user.empty() ? "public" : user));
  }
  if (path == "/metrics") {
    res.set(http::field::content_type, "text/plain; version=0.0.4");
    res.body() = prometheus_metrics(snapshot()->doc);
    return res;
  }
  if (path == "/api/v1/series" || path == "/api/v1/history" || path == "/api/v1/events") {
    if (!source_.history) throw HttpError(http::status::not_found, "this head keeps no history");
    return json(history_json(*source_.history, path, query, user.empty()));
  }
  if (path == "/api/status" || path == "/api/v1/status") {
    need_login();
    const auto snap = snapshot();
    json(snap->text);
    // An ETag of the document: a client that already has it gets 304 and no body.
    const auto& tag = snap->etag;
    res.set(http::field::etag, tag);
    res.set(http::field::cache_control, "no-cache");
    if (req[http::field::if_none_match] == tag) {
      res.result(http::status::not_modified);
      res.body().clear();
    }
    return res;
  }
  if (path == "/api/v1/nodes") {
    need_login();
    const auto offset = static_cast<std::size_t>(int_param(query, "offset", 0, 0, 1'000'000'000));
    const auto limit = static_cast<std::size_t>(int_param(query, "limit", 100, 1, 10'000));
    const auto q = param(query, "q"), model = param(query, "model"), region = param(query, "region");
    const auto name = lower(param(query, "name"));
    const auto snap = snapshot();
    const auto ql = lower(q);
    std::string page;
    std::size_t matched = 0, shown = 0;
    for (const auto& n : snap->nodes) {  // small rows, the JSON ready: 10,000 nodes in well under a millisecond
      if (!ql.empty() && n.search.find(ql) == std::string::npos) continue;
      if (!name.empty() && n.name_lower != name) continue;
      if (!region.empty() && n.region != region) continue;
      if (!model.empty() && std::find(n.models.begin(), n.models.end(), model) == n.models.end()) continue;
      if (matched >= offset && shown < limit) {
        page += (shown++ ? "," : "") + n.json;
      }
      ++matched;
    }
    return json("{\"total\":" + std::to_string(matched) + ",\"offset\":" + std::to_string(offset) + ",\"nodes\":[" + page + "]}");
  }
  if (path == "/api/v1/tasks") {
    need_login();
    const auto job = param(query, "job");
    if (job.empty()) throw BadRequest("parameter 'job' is required");
    return json(admin("tasks", {{"job", job}, {"after_ms", int_param(query, "after", 0, 0)},
                                {"limit", int_param(query, "limit", 5000, 1, 20000)}}, user));
  }
  if (path == "/api/v1/actors") {
    need_login();
    return json(admin("actors", {{"job", param(query, "job")}, {"state", param(query, "state")}, {"q", param(query, "q")},
                                 {"offset", int_param(query, "offset", 0, 0, 1'000'000'000)},
                                 {"limit", int_param(query, "limit", 100, 1, 10'000)}}, user));
  }
  if (path == "/api/v1/ledger") {
    need_login();
    return json(admin("ledger", nlohmann::json::object(), user));
  }
  if (path == "/api/v1/logs") {
    need_login();
    const auto job = param(query, "job");
    if (job.empty()) throw BadRequest("parameter 'job' is required");
    auto answer = nlohmann::json::parse(admin("logs", {{"job", job}}, user));
    const auto text = answer.value("text", std::string());
    const auto offset = static_cast<std::size_t>(int_param(query, "offset", 0, 0, INT64_MAX));
    const auto tail = static_cast<std::size_t>(int_param(query, "tail", 0, 0, 1'000'000));
    const auto q = param(query, "q");
    // Lines from `offset` on (whole lines only, so a follower never sees half a line twice), filtered by q.
    std::size_t from = std::min(offset, text.size());
    std::size_t end = text.rfind('\n');
    end = end == std::string::npos || end < from ? from : end + 1;
    std::vector<std::string> lines;
    std::size_t matched = 0;
    for (std::size_t pos = from; pos < end;) {
      auto nl = text.find('\n', pos);
      auto line = text.substr(pos, nl - pos);
      pos = nl + 1;
      if (!contains_ci(line, q)) continue;
      ++matched;
      lines.push_back(std::move(line));
    }
    if (tail && lines.size() > tail) lines.erase(lines.begin(), lines.end() - static_cast<std::ptrdiff_t>(tail));
    return json(dump({{"job", job}, {"lines", lines}, {"matched", matched}, {"next_offset", end}, {"size", text.size()}}));
  }
  throw HttpError(http::status::not_found,
                  "not found (try /, /api/v1/explorer, /api/v1/market, /api/v1/status, /metrics, /api/v1/events; see dashboard_http.hpp)");
}

}  // namespace iogrid::runtime::cluster
