#include "runtime/transport/relay_hello.hpp"

#include <sstream>

#include "runtime/transport/auth.hpp"

namespace iogrid::runtime::transport {

namespace {
std::string mac(const std::string& token, const std::string& verb, const std::string& id, const std::string& nonce) {
  return to_hex(hmac_sha256(token, "relay|" + verb + "|" + id + "|" + nonce));
}
bool word(const std::string& s) {
  if (s.empty() || s.size() > 80) return false;
  for (char c : s)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.' || c == ':')) return false;
  return true;
}
}  // namespace

std::string relay_hello(const std::string& verb, const std::string& id, const std::string& token) {
  const auto nonce = to_hex(random_bytes(16));
  return "IOGRID-RELAY/1 " + verb + " " + id + " " + nonce + " " + mac(token, verb, id, nonce) + "\n";
}

std::optional<RelayHello> parse_relay_hello(const std::string& line, const std::string& token) {
  std::istringstream in(line);
  std::string magic, verb, id, nonce, m, extra;
  if (!(in >> magic >> verb >> id >> nonce >> m) || (in >> extra)) return std::nullopt;
  if (magic != "IOGRID-RELAY/1" || (verb != "CONNECT" && verb != "PUNCH" && verb != "ACCEPT" && verb != "MEET") || !word(id) || !word(nonce)) return std::nullopt;
  if (!equal_constant_time(m, mac(token, verb, id, nonce))) return std::nullopt;
  return RelayHello{verb, id};
}

namespace {
constexpr const char* kRefused = "IOGRID-RELAY/1 REFUSED ";
}

std::string relay_refusal(const std::string& code, const std::string& reason) {
  std::string r = reason.substr(0, 160);
  for (auto& c : r)
    if (c == '\n' || c == '\r') c = ' ';
  return kRefused + code + " " + r + "\n";
}

std::optional<RelayRefusal> parse_relay_refusal(const std::string& line) {
  const std::string prefix = kRefused;
  if (line.rfind(prefix, 0) != 0) return std::nullopt;
  const auto rest = line.substr(prefix.size());
  const auto space = rest.find(' ');
  if (space == 0 || rest.empty()) return std::nullopt;
  return RelayRefusal{rest.substr(0, space), space == std::string::npos ? "" : rest.substr(space + 1)};
}

}  // namespace iogrid::runtime::transport
