// The cluster token and what is derived from it: a challenge-response proof that a peer knows the token
// without ever sending it, content hashes of job executables, and token files.
// Rules: proofs are HMAC-SHA256 over both sides' fresh random nonces, the role and the name, so a recorded
// handshake cannot be replayed; proofs are compared in constant time.
#pragma once

#include <cstdint>
#include <string>

namespace iogrid::runtime::transport {

std::string random_bytes(std::size_t n);
std::string hmac_sha256(const std::string& key, const std::string& data);
bool equal_constant_time(const std::string& a, const std::string& b);
std::string to_hex(const std::string& bytes);

// Hex SHA-256 of a file's contents; throws iogrid::Error when it cannot be read.
std::string sha256_file(const std::string& path);
std::string sha256_hex(const std::string& bytes);

// SHA-256 fed piece by piece (a file that arrives in chunks is hashed as it comes).
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void update(const void* data, std::size_t n);
  std::string hex();  // the digest of everything fed so far; the object starts over afterwards

 private:
  void* ctx_;
};

// Where a token lives when no --token-file is given: $IOGRID_TOKEN_FILE, else ~/.iogrid/token.
std::string default_token_path();
// Reads a token (surrounding whitespace trimmed); throws iogrid::Error saying how to create one.
std::string load_token(const std::string& path);
// Reads the token at `path`, creating it (64 random hex characters, mode 0600) when missing.
std::string load_or_create_token(const std::string& path, bool* created = nullptr);

// The proofs of the handshake (see wire.capnp).
std::string server_proof(const std::string& token, const std::string& client_nonce, const std::string& server_nonce);
std::string client_proof(const std::string& token, const std::string& server_nonce, const std::string& client_nonce,
                         int role, const std::string& name);

}  // namespace iogrid::runtime::transport
