#include "runtime/transport/tls.hpp"

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <cstdlib>
#include <filesystem>

#include "iogrid/core/errors.hpp"

namespace iogrid::runtime::transport {

namespace {
std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}
std::string ssl_error() {
  auto e = ERR_get_error();
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  return buf;
}
}  // namespace

TlsConfig tls_from_env() { return TlsConfig{env("IOGRID_TLS_CERT"), env("IOGRID_TLS_KEY"), env("IOGRID_TLS_CA")}; }

void check_tls(const TlsConfig& t) {
  if (t.cert.empty() && t.key.empty() && t.ca.empty()) return;
  if (t.cert.empty() || t.key.empty() || t.ca.empty())
    throw core::Error("iogrid: TLS needs all three of --tls-cert, --tls-key and --tls-ca (IOGRID_TLS_CERT/KEY/CA)");
  for (const auto* p : {&t.cert, &t.key, &t.ca})
    if (!std::filesystem::exists(*p)) throw core::Error("iogrid: TLS file " + *p + " does not exist");
}

std::shared_ptr<ssl_ctx_st> make_tls_context(const TlsConfig& t) {
  check_tls(t);
  if (!t.enabled()) return nullptr;
  SSL_CTX* ctx = SSL_CTX_new(TLS_method());
  if (!ctx) throw core::Error("iogrid: cannot create a TLS context: " + ssl_error());
  std::shared_ptr<SSL_CTX> out(ctx, SSL_CTX_free);
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  if (SSL_CTX_use_certificate_chain_file(ctx, t.cert.c_str()) != 1)
    throw core::Error("iogrid: cannot use the TLS certificate " + t.cert + ": " + ssl_error());
  if (SSL_CTX_use_PrivateKey_file(ctx, t.key.c_str(), SSL_FILETYPE_PEM) != 1)
    throw core::Error("iogrid: cannot use the TLS key " + t.key + ": " + ssl_error());
  if (SSL_CTX_check_private_key(ctx) != 1) throw core::Error("iogrid: the TLS key " + t.key + " does not match " + t.cert);
  if (SSL_CTX_load_verify_locations(ctx, t.ca.c_str(), nullptr) != 1)
    throw core::Error("iogrid: cannot load the TLS CA " + t.ca + ": " + ssl_error());
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  return out;
}

}  // namespace iogrid::runtime::transport
