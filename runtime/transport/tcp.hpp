// Plain TCP helpers below the protocols: a dial with a deadline, and two connections spliced.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace iogrid::runtime::transport {

// Connects to host:port (a name, IPv4 or IPv6), giving up after `timeout` per address (a firewall that drops
// packets would otherwise hold a connect for minutes of SYN retries). Returns a connected, blocking socket
// descriptor the caller owns, or -1 with `*error` set (e.g. "Connection refused", "Connection timed out").
// `reusable`: the socket is bound first, with SO_REUSEADDR and SO_REUSEPORT, to a port the kernel picks, so that
// other sockets of this process can bind the same local port later (hole punching, transport/punch.hpp:
// the port the head saw it from is the port it punches from).
int dial_tcp(const std::string& host, std::uint16_t port, std::chrono::milliseconds timeout, std::string* error,
             bool reusable = false);

// A non-blocking TCP socket of `family` (AF_INET, AF_INET6) bound to `port` of the wildcard address (0: the
// kernel picks) with SO_REUSEADDR and SO_REUSEPORT; -1 with `*err` (errno) set.
int reusable_socket(int family, std::uint16_t port, int* err);

// A socket's local port (0 when it has none).
std::uint16_t local_port_of(int fd);

// Waits for `fd` to become readable (or to end) for at most `timeout`; false when it did not.
bool wait_readable(int fd, std::chrono::milliseconds timeout);

// Reads one line ('\n' dropped) of at most `max` bytes from a blocking socket, byte by byte (nothing after the
// line is consumed), within `timeout`; false on a timeout, an end of stream, an error or a longer line.
bool read_line(int fd, std::string* line, std::size_t max, std::chrono::milliseconds timeout);

// Writes all of `bytes` to a blocking socket; false when the connection failed.
bool write_all(int fd, const std::string& bytes);

// Copies bytes both ways between two connected sockets until both directions have ended (one side's end of
// stream is passed on as a half-close), or either fails; then returns the bytes copied. Blocks the calling
// thread. Closes neither descriptor.
std::uint64_t splice_tcp(int a, int b);

}  // namespace iogrid::runtime::transport
