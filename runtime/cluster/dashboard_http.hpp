// The dashboard's answer to one HTTP request, apart from its sockets (a pure function of the request and the
// status snapshot), and the parser limits the server applies; tests/fuzz/fuzz_http.cpp drives both.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include <boost/beast/http.hpp>

namespace iogrid::runtime::cluster {

inline constexpr std::uint32_t kHttpHeaderLimit = 8 * 1024;
inline constexpr std::uint64_t kHttpBodyLimit = 64 * 1024;

boost::beast::http::response<boost::beast::http::string_body> dashboard_respond(
    const boost::beast::http::request<boost::beast::http::string_body>& req, const std::function<std::string()>& snapshot);

}  // namespace iogrid::runtime::cluster
