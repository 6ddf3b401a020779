#include "runtime/head/journal.hpp"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <sys/stat.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "iogrid/core/errors.hpp"
#include "runtime/head/sqlite.hpp"
#include "runtime/transport/auth.hpp"

namespace iogrid::runtime::head {

namespace {

const std::string kGenesis(64, '0');

// SHA-256 with one digest context per thread (a million entries are hashed in a verify).
class Hasher {
 public:
  Hasher() : md_(EVP_MD_fetch(nullptr, "SHA256", nullptr)), ctx_(EVP_MD_CTX_new()) {}
  ~Hasher() {
    EVP_MD_CTX_free(ctx_);
    EVP_MD_free(md_);
  }
  std::string chain(const std::string& prev, std::uint64_t seq, const std::string& body) {
    const auto n = std::to_string(seq);
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (!md_ || !ctx_ || EVP_DigestInit_ex2(ctx_, md_, nullptr) != 1 || EVP_DigestUpdate(ctx_, prev.data(), prev.size()) != 1 ||
        EVP_DigestUpdate(ctx_, "|", 1) != 1 || EVP_DigestUpdate(ctx_, n.data(), n.size()) != 1 ||
        EVP_DigestUpdate(ctx_, "|", 1) != 1 || EVP_DigestUpdate(ctx_, body.data(), body.size()) != 1 ||
        EVP_DigestFinal_ex(ctx_, out, &len) != 1)
      throw core::Error("iogrid: SHA-256 failed");
    return transport::to_hex(std::string(reinterpret_cast<const char*>(out), len));
  }

 private:
  EVP_MD* md_;
  EVP_MD_CTX* ctx_;
};

std::string chain(const std::string& prev, std::uint64_t seq, const std::string& body) {
  thread_local Hasher h;
  return h.chain(prev, seq, body);
}

// The integer after "key": in a canonical body, without parsing the whole entry; false when absent.
bool field(const std::string& body, const char* key, std::int64_t* out) {
  const auto at = body.find(key);
  if (at == std::string::npos) return false;
  const char* p = body.c_str() + at + std::strlen(key);
  char* end = nullptr;
  errno = 0;
  const long long v = std::strtoll(p, &end, 10);
  if (end == p || errno != 0 || (*end != ',' && *end != '}')) return false;
  *out = v;
  return true;
}

std::string checkpoint_message(std::uint64_t seq, const std::string& hash) {
  return "iogrid-ledger-checkpoint|" + std::to_string(seq) + "|" + hash;
}

std::string unhex(const std::string& h) {
  std::string out;
  if (h.size() % 2) return out;
  for (std::size_t i = 0; i + 1 < h.size(); i += 2) {
    auto v = [](char c) { return c >= 'a' ? c - 'a' + 10 : c >= 'A' ? c - 'A' + 10 : c - '0'; };
    out.push_back(static_cast<char>(v(h[i]) * 16 + v(h[i + 1])));
  }
  return out;
}

struct PkeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
using Pkey = std::unique_ptr<EVP_PKEY, PkeyFree>;

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

Pkey public_key_of(const std::string& pem) {
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  Pkey k(PEM_read_bio_PUBKEY(bio, nullptr, nullptr, nullptr));
  BIO_free(bio);
  return k;
}

bool verify_signature(EVP_PKEY* key, const std::string& message, const std::string& signature) {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  bool ok = EVP_DigestVerifyInit(ctx, nullptr, nullptr, nullptr, key) == 1 &&
            EVP_DigestVerify(ctx, reinterpret_cast<const unsigned char*>(signature.data()), signature.size(),
                             reinterpret_cast<const unsigned char*>(message.data()), message.size()) == 1;
  EVP_MD_CTX_free(ctx);
  return ok;
}

const char* kSchema =
    "CREATE TABLE IF NOT EXISTS journal (seq INTEGER PRIMARY KEY, body TEXT NOT NULL, hash TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS journal_checkpoints (seq INTEGER PRIMARY KEY, hash TEXT NOT NULL, "
    "signature TEXT NOT NULL, time_ms INTEGER NOT NULL);";

struct DbClose {
  void operator()(sqlite3* db) const { sqlite3_close(db); }
};
// The head's database, read-only (verify and statements run beside a live head); throws when it cannot.
std::unique_ptr<sqlite3, DbClose> open_readonly(const std::string& path) {
  if (!std::filesystem::exists(path)) throw core::Error("iogrid: no ledger at " + path);
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
    std::string why = db ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close(db);
    throw core::Error("iogrid: cannot open the ledger " + path + ": " + why);
  }
  std::unique_ptr<sqlite3, DbClose> handle(db);
  sql::Stmt tables(db, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN ('journal', 'journal_checkpoints')");
  if (!tables.step() || tables.col_num(0) != 2)
    throw core::Error("iogrid: " + path + " holds no ledger journal (its head kept no journal: started before journals, or without --state)");
  return handle;
}

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace

// ---- entries ----

std::string JournalEntry::body() const {
  // nlohmann's object keeps its keys sorted: the same entry always reads as the same bytes.
  nlohmann::json j{{"time_ms", time_ms}, {"kind", kind},     {"job", job},       {"user", user},
                   {"reservation", reservation}, {"node", node}, {"gpu_model", gpu_model}, {"tier", tier},
                   {"gpus", gpus},       {"seconds", seconds}, {"price", price},   {"charge", charge},
                   {"earning", earning}, {"fee", fee}};
  if (!detail.empty()) j["detail"] = detail;
  return j.dump();
}

JournalEntry JournalEntry::parse(const std::string& body, std::uint64_t seq) {
  auto j = nlohmann::json::parse(body, nullptr, false);
  if (!j.is_object()) throw core::Error("ledger entry " + std::to_string(seq) + " is not a JSON object");
  JournalEntry e;
  try {
    e.seq = seq;
    e.time_ms = j.at("time_ms").get<std::int64_t>();
    e.kind = j.at("kind").get<std::string>();
    e.job = j.at("job").get<std::string>();
    e.user = j.at("user").get<std::string>();
    e.reservation = j.at("reservation").get<std::string>();
    e.node = j.at("node").get<std::string>();
    e.gpu_model = j.at("gpu_model").get<std::string>();
    e.tier = j.at("tier").get<std::string>();
    e.gpus = j.at("gpus").get<double>();
    e.seconds = j.at("seconds").get<double>();
    e.price = j.at("price").get<double>();
    e.charge = j.at("charge").get<std::int64_t>();
    e.earning = j.at("earning").get<std::int64_t>();
    e.fee = j.at("fee").get<std::int64_t>();
    e.detail = j.value("detail", std::string());
  } catch (const nlohmann::json::exception& x) {
    throw core::Error("ledger entry " + std::to_string(seq) + ": " + x.what());
  }
  return e;
}

// ---- the key pair ----

namespace {

struct KeyPair {
  Pkey key;
  std::string public_pem;
};

// Loads the private key at `path`, or makes one (0600), and writes its public half to path + ".pub".
KeyPair load_or_make_key(const std::string& path) {
  KeyPair k;
  if (std::filesystem::exists(path)) {
    const auto pem = read_file(path);
    BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
    k.key.reset(PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr));
    BIO_free(bio);
    if (!k.key) throw core::Error("iogrid: the ledger's signing key " + path + " is unreadable");
  } else {
    k.key.reset(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"));
    if (!k.key) throw core::Error("iogrid: cannot make the ledger's signing key");
    BIO* bio = BIO_new(BIO_s_mem());
    PEM_write_bio_PrivateKey(bio, k.key.get(), nullptr, nullptr, 0, nullptr, nullptr);
    char* data = nullptr;
    const long n = BIO_get_mem_data(bio, &data);
    const std::string pem(data, static_cast<std::size_t>(n));
    BIO_free(bio);
    std::error_code ec;
    std::filesystem::create_directories(std::filesystem::path(path).parent_path(), ec);
    {
      std::ofstream out(path, std::ios::binary | std::ios::trunc);
      out << pem;
      if (!out) throw core::Error("iogrid: cannot write the ledger's signing key " + path);
    }
    ::chmod(path.c_str(), 0600);
  }
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PUBKEY(bio, k.key.get());
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio, &data);
  k.public_pem.assign(data, static_cast<std::size_t>(n));
  BIO_free(bio);
  const auto pub = path + ".pub";
  if (read_file(pub) != k.public_pem) {
    std::ofstream out(pub, std::ios::binary | std::ios::trunc);
    out << k.public_pem;
  }
  return k;
}

}  // namespace

struct Journal::Key {
  Pkey key;
  std::string public_pem;
};

// ---- the journal ----

Journal::Journal(const std::string& db_path, const std::string& key_path) : path_(db_path) {
  auto pair = load_or_make_key(key_path);
  key_ = std::make_unique<Key>(Key{std::move(pair.key), std::move(pair.public_pem)});
  db_ = sql::open(db_path, "ledger journal");
  try {
    sql::exec(db_, "PRAGMA journal_mode=WAL;", path_);
    sql::exec(db_, kSchema, path_);
    last_hash_ = kGenesis;
    sql::Stmt last(db_, "SELECT seq, hash FROM journal ORDER BY seq DESC LIMIT 1");
    if (last.step()) {
      last_seq_ = static_cast<std::uint64_t>(last.col_num(0));
      last_hash_ = last.col_text(1);
    }
    sql::Stmt cp(db_, "SELECT seq FROM journal_checkpoints ORDER BY seq DESC LIMIT 1");
    if (cp.step()) signed_seq_ = static_cast<std::uint64_t>(cp.col_num(0));
  } catch (...) {
    sqlite3_close(db_);
    throw;
  }
}

Journal::~Journal() {
  try {
    checkpoint();
  } catch (...) {
  }
  sqlite3_close(db_);
}

std::uint64_t Journal::append_locked(JournalEntry& e) {
  if (e.time_ms == 0) e.time_ms = now_ms();
  e.seq = last_seq_ + 1;
  const auto body = e.body();
  const auto hash = chain(last_hash_, e.seq, body);
  sql::Stmt put(db_, "INSERT INTO journal (seq, body, hash) VALUES (?, ?, ?)");
  put.num(1, static_cast<std::int64_t>(e.seq)).text(2, body).text(3, hash);
  put.step();
  last_seq_ = e.seq;
  last_hash_ = hash;
  return e.seq;
}

std::uint64_t Journal::append(JournalEntry e) { return append_locked(e); }

void Journal::append_all(std::vector<JournalEntry> entries) {
  sql::exec(db_, "BEGIN", path_);
  try {
    sql::Stmt put(db_, "INSERT INTO journal (seq, body, hash) VALUES (?, ?, ?)");
    for (auto& e : entries) {
      if (e.time_ms == 0) e.time_ms = now_ms();
      e.seq = last_seq_ + 1;
      const auto body = e.body();
      const auto hash = chain(last_hash_, e.seq, body);
      put.num(1, static_cast<std::int64_t>(e.seq)).text(2, body).text(3, hash);
      put.step();
      put.reset();
      last_seq_ = e.seq;
      last_hash_ = hash;
    }
    sql::exec(db_, "COMMIT", path_);
  } catch (...) {
    sql::exec(db_, "ROLLBACK", path_);
    throw;
  }
}

bool Journal::checkpoint() {
  if (last_seq_ == 0 || last_seq_ == signed_seq_) return false;
  const auto message = checkpoint_message(last_seq_, last_hash_);
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  unsigned char sig[64];
  std::size_t len = sizeof sig;
  const bool ok = EVP_DigestSignInit(ctx, nullptr, nullptr, nullptr, key_->key.get()) == 1 &&
                  EVP_DigestSign(ctx, sig, &len, reinterpret_cast<const unsigned char*>(message.data()), message.size()) == 1;
  EVP_MD_CTX_free(ctx);
  if (!ok) throw core::Error("iogrid: cannot sign the ledger's checkpoint");
  sql::Stmt put(db_, "INSERT OR REPLACE INTO journal_checkpoints (seq, hash, signature, time_ms) VALUES (?, ?, ?, ?)");
  put.num(1, static_cast<std::int64_t>(last_seq_)).text(2, last_hash_).text(3, transport::to_hex(std::string(reinterpret_cast<const char*>(sig), len))).num(4, now_ms());
  put.step();
  signed_seq_ = last_seq_;
  return true;
}

std::string Journal::public_key_pem() const { return key_->public_pem; }
std::string Journal::fingerprint() const { return transport::sha256_hex(key_->public_pem).substr(0, 16); }

JournalCheck Journal::verify(const std::string& db_path, const std::string& public_key_pem) {
  const auto t0 = std::chrono::steady_clock::now();
  JournalCheck r;
  const auto handle = open_readonly(db_path);
  sqlite3* db = handle.get();
  auto done = [&](bool ok, std::uint64_t broken, std::string why) {
    r.ok = ok;
    r.broken = broken;
    r.why = std::move(why);
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return r;
  };
  auto key = public_key_of(public_key_pem);
  if (!key) return done(false, 0, "the public key given is not a PEM public key");
  // The signed checkpoints first: each is checked against the chain as the pass below reaches its entry.
  std::map<std::uint64_t, std::string> checkpoints;  // seq -> hash
  {
    sql::Stmt cp(db, "SELECT seq, hash, signature FROM journal_checkpoints ORDER BY seq");
    while (cp.step()) {
      const auto seq = static_cast<std::uint64_t>(cp.col_num(0));
      const auto hash = cp.col_text(1);
      if (!verify_signature(key.get(), checkpoint_message(seq, hash), unhex(cp.col_text(2))))
        return done(false, 0, "the checkpoint at entry " + std::to_string(seq) + " is not signed by this head's key");
      checkpoints[seq] = hash;
      ++r.checkpoints;
    }
  }
  std::string prev = kGenesis;
  std::uint64_t expected = 1, last_checkpoint = 0;
  sql::Stmt rows(db, "SELECT seq, body, hash FROM journal ORDER BY seq");
  while (rows.step()) {
    const auto seq = static_cast<std::uint64_t>(rows.col_num(0));
    if (seq != expected)
      return done(false, expected, "entry " + std::to_string(expected) + " is missing (the next one is " + std::to_string(seq) + ")");
    const auto body = rows.col_text(1);
    const auto hash = chain(prev, seq, body);
    if (hash != rows.col_text(2))
      return done(false, seq, "entry " + std::to_string(seq) + " was changed: its hash does not match its contents and the entry before it");
    if (auto c = checkpoints.find(seq); c != checkpoints.end()) {
      if (c->second != hash)
        return done(false, last_checkpoint + 1,
                    "the chain does not reach the signed checkpoint at entry " + std::to_string(seq) + ": an entry from " +
                        std::to_string(last_checkpoint + 1) + " to " + std::to_string(seq) + " was rewritten (and the hashes after it recomputed)");
      last_checkpoint = seq;
    }
    // The double entry, read straight from the canonical body (its hash matched: the head wrote it).
    std::int64_t charge = 0, earning = 0, fee = 0;
    if (!field(body, "\"charge\":", &charge) || !field(body, "\"earning\":", &earning) || !field(body, "\"fee\":", &fee))
      return done(false, seq, "entry " + std::to_string(seq) + " lacks its charge, earning or fee");
    if (charge != earning + fee || charge < 0 || earning < 0 || fee < 0)
      return done(false, seq, "entry " + std::to_string(seq) + " does not balance: charge " + std::to_string(charge) +
                                  " != earning " + std::to_string(earning) + " + fee " + std::to_string(fee) + " (micro-dollars)");
    prev = hash;
    ++expected;
    ++r.entries;
  }
  if (!checkpoints.empty() && checkpoints.rbegin()->first > r.entries)
    return done(false, r.entries + 1,
                "entries after " + std::to_string(r.entries) + " are gone: the head signed a checkpoint at entry " +
                    std::to_string(checkpoints.rbegin()->first));
  r.unsigned_tail = r.entries - last_checkpoint;
  return done(true, 0, "");
}

std::vector<JournalEntry> Journal::read(const std::string& db_path, std::uint64_t from, std::uint64_t to) {
  const auto handle = open_readonly(db_path);
  sqlite3* db = handle.get();
  std::vector<JournalEntry> out;
  sql::Stmt rows(db, "SELECT seq, body FROM journal WHERE seq >= ? AND (? = 0 OR seq <= ?) ORDER BY seq");
  rows.num(1, static_cast<std::int64_t>(from)).num(2, static_cast<std::int64_t>(to)).num(3, static_cast<std::int64_t>(to));
  while (rows.step()) out.push_back(JournalEntry::parse(rows.col_text(1), static_cast<std::uint64_t>(rows.col_num(0))));
  return out;
}

}  // namespace iogrid::runtime::head
