// The dashboard's answer to one HTTP request, apart from its sockets (a function of the request, the status
// snapshot and the head's history), and the parser limits the server applies; tests/fuzz/fuzz_http.cpp drives both.
// Routes: / (the page), /api/status and /api/v1/status (status JSON), /metrics (Prometheus text), and with a
// history: /api/v1/series?prefix=P, /api/v1/history?series=S[&from=MS][&to=MS][&points=N] (default: the last
// hour, at most 1000 points), /api/v1/events?[kind=K][&subject=PREFIX][&q=TEXT][&from=MS][&to=MS][&before=ID][&limit=N]
// (newest first; `next_before` pages on). Times are Unix milliseconds. A bad parameter answers 400 naming it.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>

#include <boost/beast/http.hpp>

#include "runtime/head/history.hpp"

namespace iogrid::runtime::cluster {

inline constexpr std::uint32_t kHttpHeaderLimit = 8 * 1024;
inline constexpr std::uint64_t kHttpBodyLimit = 64 * 1024;

boost::beast::http::response<boost::beast::http::string_body> dashboard_respond(
    const boost::beast::http::request<boost::beast::http::string_body>& req, const std::function<std::string()>& snapshot,
    head::History* history = nullptr);

// "/a/b?x=1&y=%20z" -> path "/a/b", {x: "1", y: " z"} (percent-decoding, '+' as space). Throws
// std::invalid_argument on a malformed escape.
std::string split_target(const std::string& target, std::map<std::string, std::string>& query);

}  // namespace iogrid::runtime::cluster
