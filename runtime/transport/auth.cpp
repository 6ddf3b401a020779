#include "runtime/transport/auth.hpp"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "iogrid/core/errors.hpp"

namespace iogrid::runtime::transport {

std::string random_bytes(std::size_t n) {
  std::string out(n, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(n)) != 1)
    throw core::Error("iogrid: the system random number generator failed");
  return out;
}

std::string hmac_sha256(const std::string& key, const std::string& data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(data.data()),
       data.size(), out, &len);
  return std::string(reinterpret_cast<char*>(out), len);
}

bool equal_constant_time(const std::string& a, const std::string& b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (std::size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

std::string to_hex(const std::string& bytes) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out.push_back(digits[c >> 4]);
    out.push_back(digits[c & 15]);
  }
  return out;
}

namespace {
struct DigestCtx {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  ~DigestCtx() { EVP_MD_CTX_free(ctx); }
};
}  // namespace

std::string sha256_hex(const std::string& bytes) {
  DigestCtx d;
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned len = 0;
  EVP_DigestInit_ex(d.ctx, EVP_sha256(), nullptr);
  EVP_DigestUpdate(d.ctx, bytes.data(), bytes.size());
  EVP_DigestFinal_ex(d.ctx, out, &len);
  return to_hex(std::string(reinterpret_cast<char*>(out), len));
}

Sha256::Sha256() : ctx_(EVP_MD_CTX_new()) { EVP_DigestInit_ex(static_cast<EVP_MD_CTX*>(ctx_), EVP_sha256(), nullptr); }

Sha256::~Sha256() { EVP_MD_CTX_free(static_cast<EVP_MD_CTX*>(ctx_)); }

void Sha256::update(const void* data, std::size_t n) { EVP_DigestUpdate(static_cast<EVP_MD_CTX*>(ctx_), data, n); }

std::string Sha256::hex() {
  auto* ctx = static_cast<EVP_MD_CTX*>(ctx_);
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned len = 0;
  EVP_DigestFinal_ex(ctx, out, &len);
  EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr);
  return to_hex(std::string(reinterpret_cast<char*>(out), len));
}

std::string sha256_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw core::Error("iogrid: cannot read " + path);
  DigestCtx d;
  EVP_DigestInit_ex(d.ctx, EVP_sha256(), nullptr);
  std::string buf(1 << 20, '\0');
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    EVP_DigestUpdate(d.ctx, buf.data(), static_cast<std::size_t>(in.gcount()));
  }
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned len = 0;
  EVP_DigestFinal_ex(d.ctx, out, &len);
  return to_hex(std::string(reinterpret_cast<char*>(out), len));
}

std::string default_token_path() {
  if (const char* p = std::getenv("IOGRID_TOKEN_FILE"); p && *p) return p;
  const char* home = std::getenv("HOME");
  return std::string(home && *home ? home : "/tmp") + "/.iogrid/token";
}

std::string load_token(const std::string& path) {
  std::ifstream in(path);
  if (!in)
    throw core::Error("iogrid: cannot read the cluster token file " + path +
                " (copy the head's token file here, or pass --token-file / set IOGRID_TOKEN_FILE)");
  std::stringstream ss;
  ss << in.rdbuf();
  auto t = ss.str();
  auto b = t.find_first_not_of(" \t\r\n"), e = t.find_last_not_of(" \t\r\n");
  if (b == std::string::npos) throw core::Error("iogrid: the cluster token file " + path + " is empty");
  t = t.substr(b, e - b + 1);
  if (t.size() < 16) throw core::Error("iogrid: the cluster token in " + path + " is too short (at least 16 characters)");
  return t;
}

std::string load_or_create_token(const std::string& path, bool* created) {
  if (created) *created = false;
  if (std::filesystem::exists(path)) return load_token(path);
  auto dir = std::filesystem::path(path).parent_path();
  if (!dir.empty()) std::filesystem::create_directories(dir);
  auto token = to_hex(random_bytes(32));
  {
    std::ofstream out(path, std::ios::trunc);
    if (!out) throw core::Error("iogrid: cannot write the cluster token file " + path);
    out << token << "\n";
  }
  ::chmod(path.c_str(), 0600);
  if (created) *created = true;
  return token;
}

std::string server_proof(const std::string& token, const std::string& client_nonce, const std::string& server_nonce) {
  return hmac_sha256(token, "server|" + client_nonce + "|" + server_nonce);
}

std::string client_proof(const std::string& token, const std::string& server_nonce, const std::string& client_nonce,
                         int role, const std::string& name) {
  return hmac_sha256(token, "client|" + server_nonce + "|" + client_nonce + "|" + std::to_string(role) + "|" + name);
}

}  // namespace iogrid::runtime::transport
