// Plain TCP helpers below the protocols: a dial with a deadline, and two connections spliced.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace iogrid::runtime::transport {

// Connects to host:port (a name, IPv4 or IPv6), giving up after `timeout` per address (a firewall that drops
// packets would otherwise hold a connect for minutes of SYN retries). Returns a connected, blocking socket
// descriptor the caller owns, or -1 with `*error` set (e.g. "Connection refused", "Connection timed out").
int dial_tcp(const std::string& host, std::uint16_t port, std::chrono::milliseconds timeout, std::string* error);

// Copies bytes both ways between two connected sockets until both directions have ended (one side's end of
// stream is passed on as a half-close), or either fails; then returns the bytes copied. Blocks the calling
// thread. Closes neither descriptor.
std::uint64_t splice_tcp(int a, int b);

}  // namespace iogrid::runtime::transport
