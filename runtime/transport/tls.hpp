// TLS for every cluster connection (control plane and data plane), when configured: each process presents a
// certificate signed by the cluster's CA and verifies its peer's against the same CA (mutual TLS), on top of
// the token handshake. Configured by --tls-cert/--tls-key/--tls-ca on the daemons and IOGRID_TLS_CERT/KEY/CA
// for drivers; a node passes its own to the worker processes it starts.
#pragma once

#include <memory>
#include <string>

struct ssl_ctx_st;

namespace iogrid::runtime::transport {

struct TlsConfig {
  std::string cert, key, ca;
  bool enabled() const { return !ca.empty(); }
};

// From IOGRID_TLS_CERT / IOGRID_TLS_KEY / IOGRID_TLS_CA (all empty: no TLS).
TlsConfig tls_from_env();
// Checks that all three are given and readable; throws iogrid::Error saying which is missing or wrong.
void check_tls(const TlsConfig& t);
// An OpenSSL context for both sides of a connection: our certificate and key, the CA to verify peers with,
// peer certificates required, TLS 1.2 or newer.
std::shared_ptr<ssl_ctx_st> make_tls_context(const TlsConfig& t);

}  // namespace iogrid::runtime::transport
