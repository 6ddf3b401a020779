// HeadStore: the head's durable tables in SQLite (write-ahead log), so a head restarted with the same
// --state directory keeps its node table, job table, key-value store and id counters.
// Rules: every change is written through at once (one small transaction); rows hold the wire encoding of
// a node (Cap'n Proto NodeInfo) so the schema of the database never has to follow the resource model.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

struct sqlite3;

namespace iogrid::runtime::head {

struct StoredNode {
  std::uint32_t index = 0;
  std::string name;
  std::string info;   // capnp NodeInfo (flat)
  std::string host;
  bool alive = false;
};

struct StoredJob {
  std::string id, driver, code_hash, owner_host, state;
  std::uint16_t owner_port = 0;
  std::uint64_t leases_granted = 0, started = 0, ended = 0;
};

class HeadStore {
 public:
  // Opens (creating) DIR/head.db; throws iogrid::Error naming the file on failure.
  explicit HeadStore(const std::string& dir);
  ~HeadStore();
  HeadStore(const HeadStore&) = delete;
  HeadStore& operator=(const HeadStore&) = delete;

  void put_node(const StoredNode& n);
  void put_job(const StoredJob& j);
  void put_kv(const std::string& key, const std::string& value);
  void put_counter(const std::string& name, std::uint64_t value);
  // A named text document of the head's own (the ledger).
  void put_document(const std::string& name, const std::string& value);
  std::string document(const std::string& name);  // empty when absent

  std::vector<StoredNode> nodes();
  std::vector<StoredJob> jobs();
  std::map<std::string, std::string> kv();
  std::uint64_t counter(const std::string& name);
  const std::string& path() const { return path_; }

 private:
  void exec(const char* sql);
  sqlite3* db_ = nullptr;
  std::string path_;
};

}  // namespace iogrid::runtime::head
