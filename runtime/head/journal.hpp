// Journal: the ledger's entries one by one, tamper-evident. Every charge (scheduler/ledger.hpp: a lease, or a
// reservation's GPUs on one node) becomes an entry with its job, user, provider node, GPU model, GPUs, seconds,
// price, tier and the double-entry split (charge = provider's earning + network's fee, in micro-dollars).
// Rules:
// - Entries are numbered 1, 2, ... without gaps and hash-chained: hash(n) = SHA-256(hash(n-1) "|" n "|" body(n)),
//   hash(0) = 64 zeros; body is the entry's canonical JSON (keys sorted). Changing, removing or inserting a row
//   breaks the chain at that entry.
// - Checkpoints: the head signs (Ed25519) "iogrid-ledger-checkpoint|n|hash(n)" at most every kCheckpointEvery
//   seconds when entries were added, and when it stops. Someone who rewrites an entry and recomputes every hash
//   after it is caught by the first checkpoint past it (they lack the head's private key). Keep a copy of the
//   public key (`ledger.pub`, or its fingerprint from the head's log) away from the head: whoever holds the state
//   directory holds the key files too.
// - Entries after the last checkpoint are unsigned: verify says how many.
// Tables journal(seq, body, hash) and journal_checkpoints(seq, hash, signature, time_ms) in the head's
// database; the key pair in the state directory (ledger.key, 0600; ledger.pub).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

struct sqlite3;

namespace iogrid::runtime::head {

inline constexpr int kCheckpointEvery = 10;  // seconds between checkpoints while entries come

struct JournalEntry {
  std::uint64_t seq = 0;     // assigned by Journal::append
  std::int64_t time_ms = 0;  // unix time; assigned by append when 0
  std::string kind;          // "lease", "reservation", or "check" (a spot check that caught a provider or stayed
                             // unsettled: no money moves, `detail` says what happened)
  std::string job, user, reservation, node, gpu_model;
  std::string tier = "standard";
  double gpus = 0, seconds = 0, price = 0;      // price per GPU-hour
  std::int64_t charge = 0, earning = 0, fee = 0;  // micro-dollars; charge == earning + fee
  std::string detail;                              // checks: the outcome in words; absent from older entries
  std::string body() const;                       // canonical JSON (without seq)
  static JournalEntry parse(const std::string& body, std::uint64_t seq);  // throws iogrid::Error
};

struct JournalCheck {
  bool ok = false;
  std::uint64_t entries = 0, checkpoints = 0;
  std::uint64_t unsigned_tail = 0;  // entries after the last checkpoint
  std::uint64_t broken = 0;         // the first entry found broken (0: none, or the break is in a checkpoint)
  std::string why;                  // what is wrong, naming the entry or checkpoint
  double seconds = 0;               // how long the check took
};

class Journal {
 public:
  // Opens (creating) the journal's tables in the SQLite file `db_path` and its key pair at `key_path`
  // (+ ".pub"), made on first use. Throws iogrid::Error naming the file on failure.
  Journal(const std::string& db_path, const std::string& key_path);
  ~Journal();
  Journal(const Journal&) = delete;
  Journal& operator=(const Journal&) = delete;

  std::uint64_t append(JournalEntry e);  // returns its number
  // Many entries in one transaction (benchmarks, imports).
  void append_all(std::vector<JournalEntry> entries);
  // Signs the latest entry when it is not signed yet; false when there was nothing to sign.
  bool checkpoint();
  std::uint64_t last() const { return last_seq_; }
  std::string public_key_pem() const;
  std::string fingerprint() const;  // SHA-256 of the public key (hex, first 16)

  // Reads every entry of `db_path` in order: the chain, the double entry of each, the checkpoints' signatures
  // with `public_key_pem`. Never throws for a broken journal (it says so); throws when the file cannot be read.
  static JournalCheck verify(const std::string& db_path, const std::string& public_key_pem);
  // Entries from..to (inclusive; 0: the end), for statements.
  static std::vector<JournalEntry> read(const std::string& db_path, std::uint64_t from = 1, std::uint64_t to = 0);

 private:
  std::uint64_t append_locked(JournalEntry& e);
  sqlite3* db_ = nullptr;
  std::string path_;
  struct Key;
  std::unique_ptr<Key> key_;
  std::uint64_t last_seq_ = 0, signed_seq_ = 0;
  std::string last_hash_;
};

}  // namespace iogrid::runtime::head
