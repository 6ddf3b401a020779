#include "runtime/head/head_store.hpp"

#include <filesystem>

#include "runtime/head/sqlite.hpp"

namespace iogrid::runtime::head {

using sql::Stmt;

HeadStore::HeadStore(const std::string& dir) {
  path_ = (std::filesystem::path(dir) / "head.db").string();
  db_ = sql::open(path_, "head state");
  exec("PRAGMA journal_mode=WAL");
  exec("PRAGMA synchronous=NORMAL");
  exec("CREATE TABLE IF NOT EXISTS nodes(idx INTEGER PRIMARY KEY, name TEXT, info BLOB, host TEXT, alive INTEGER)");
  exec("CREATE TABLE IF NOT EXISTS jobs(id TEXT PRIMARY KEY, driver TEXT, code_hash TEXT, owner_host TEXT, owner_port INTEGER,"
       " state TEXT, leases_granted INTEGER, started INTEGER, ended INTEGER)");
  exec("CREATE TABLE IF NOT EXISTS kv(key TEXT PRIMARY KEY, value BLOB)");
  exec("CREATE TABLE IF NOT EXISTS counters(name TEXT PRIMARY KEY, value INTEGER)");
  exec("CREATE TABLE IF NOT EXISTS documents(name TEXT PRIMARY KEY, value BLOB)");
}

HeadStore::~HeadStore() { sqlite3_close(db_); }

void HeadStore::exec(const char* statement) { sql::exec(db_, statement, path_); }

void HeadStore::put_node(const StoredNode& n) {
  Stmt st(db_, "INSERT OR REPLACE INTO nodes(idx, name, info, host, alive) VALUES(?,?,?,?,?)");
  st.num(1, n.index).text(2, n.name).blob(3, n.info).text(4, n.host).num(5, n.alive ? 1 : 0).step();
}

void HeadStore::put_job(const StoredJob& j) {
  Stmt st(db_, "INSERT OR REPLACE INTO jobs(id, driver, code_hash, owner_host, owner_port, state, leases_granted, started, ended)"
               " VALUES(?,?,?,?,?,?,?,?,?)");
  st.text(1, j.id).text(2, j.driver).text(3, j.code_hash).text(4, j.owner_host).num(5, j.owner_port).text(6, j.state);
  st.num(7, static_cast<std::int64_t>(j.leases_granted)).num(8, static_cast<std::int64_t>(j.started));
  st.num(9, static_cast<std::int64_t>(j.ended)).step();
}

void HeadStore::put_kv(const std::string& key, const std::string& value) {
  Stmt(db_, "INSERT OR REPLACE INTO kv(key, value) VALUES(?,?)").text(1, key).blob(2, value).step();
}

void HeadStore::put_counter(const std::string& name, std::uint64_t value) {
  Stmt(db_, "INSERT OR REPLACE INTO counters(name, value) VALUES(?,?)").text(1, name).num(2, static_cast<std::int64_t>(value)).step();
}

void HeadStore::put_document(const std::string& name, const std::string& value) {
  Stmt(db_, "INSERT OR REPLACE INTO documents(name, value) VALUES(?,?)").text(1, name).text(2, value).step();
}

std::string HeadStore::document(const std::string& name) {
  Stmt st(db_, "SELECT value FROM documents WHERE name = ?");
  st.text(1, name);
  return st.step() ? st.col_text(0) : std::string();
}

std::vector<StoredNode> HeadStore::nodes() {
  std::vector<StoredNode> out;
  Stmt st(db_, "SELECT idx, name, info, host, alive FROM nodes ORDER BY idx");
  while (st.step())
    out.push_back(StoredNode{static_cast<std::uint32_t>(st.col_num(0)), st.col_text(1), st.col_text(2), st.col_text(3),
                             st.col_num(4) != 0});
  return out;
}

std::vector<StoredJob> HeadStore::jobs() {
  std::vector<StoredJob> out;
  Stmt st(db_, "SELECT id, driver, code_hash, owner_host, owner_port, state, leases_granted, started, ended FROM jobs");
  while (st.step()) {
    StoredJob j;
    j.id = st.col_text(0);
    j.driver = st.col_text(1);
    j.code_hash = st.col_text(2);
    j.owner_host = st.col_text(3);
    j.owner_port = static_cast<std::uint16_t>(st.col_num(4));
    j.state = st.col_text(5);
    j.leases_granted = static_cast<std::uint64_t>(st.col_num(6));
    j.started = static_cast<std::uint64_t>(st.col_num(7));
    j.ended = static_cast<std::uint64_t>(st.col_num(8));
    out.push_back(std::move(j));
  }
  return out;
}

std::map<std::string, std::string> HeadStore::kv() {
  std::map<std::string, std::string> out;
  Stmt st(db_, "SELECT key, value FROM kv");
  while (st.step()) out[st.col_text(0)] = st.col_text(1);
  return out;
}

std::uint64_t HeadStore::counter(const std::string& name) {
  Stmt st(db_, "SELECT value FROM counters WHERE name = ?");
  st.text(1, name);
  return st.step() ? static_cast<std::uint64_t>(st.col_num(0)) : 0;
}

}  // namespace iogrid::runtime::head
