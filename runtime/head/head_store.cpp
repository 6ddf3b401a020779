#include "runtime/head/head_store.hpp"

#include <sqlite3.h>

#include <filesystem>

#include "iogrid/core/errors.hpp"

namespace iogrid::runtime::head {

namespace {
struct Stmt {
  sqlite3_stmt* s = nullptr;
  Stmt(sqlite3* db, const char* sql) {
    if (sqlite3_prepare_v2(db, sql, -1, &s, nullptr) != SQLITE_OK)
      throw core::Error(std::string("iogrid: head state: ") + sqlite3_errmsg(db));
  }
  ~Stmt() { sqlite3_finalize(s); }
  Stmt& text(int i, const std::string& v) {
    sqlite3_bind_text(s, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Stmt& blob(int i, const std::string& v) {
    sqlite3_bind_blob(s, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Stmt& num(int i, std::int64_t v) {
    sqlite3_bind_int64(s, i, v);
    return *this;
  }
  bool step(sqlite3* db) {
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    throw core::Error(std::string("iogrid: head state: ") + sqlite3_errmsg(db));
  }
  std::string col_text(int i) {
    auto* p = sqlite3_column_blob(s, i);
    return p ? std::string(static_cast<const char*>(p), static_cast<std::size_t>(sqlite3_column_bytes(s, i))) : std::string();
  }
  std::int64_t col_num(int i) { return sqlite3_column_int64(s, i); }
};
}  // namespace

HeadStore::HeadStore(const std::string& dir) {
  std::filesystem::create_directories(dir);
  path_ = (std::filesystem::path(dir) / "head.db").string();
  if (sqlite3_open(path_.c_str(), &db_) != SQLITE_OK) {
    std::string why = db_ ? sqlite3_errmsg(db_) : "out of memory";
    sqlite3_close(db_);
    db_ = nullptr;
    throw core::Error("iogrid: cannot open the head state " + path_ + ": " + why);
  }
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

void HeadStore::exec(const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string why = err ? err : "unknown error";
    sqlite3_free(err);
    throw core::Error("iogrid: head state " + path_ + ": " + why);
  }
}

void HeadStore::put_node(const StoredNode& n) {
  Stmt st(db_, "INSERT OR REPLACE INTO nodes(idx, name, info, host, alive) VALUES(?,?,?,?,?)");
  st.num(1, n.index).text(2, n.name).blob(3, n.info).text(4, n.host).num(5, n.alive ? 1 : 0).step(db_);
}

void HeadStore::put_job(const StoredJob& j) {
  Stmt st(db_, "INSERT OR REPLACE INTO jobs(id, driver, code_hash, owner_host, owner_port, state, leases_granted, started, ended)"
               " VALUES(?,?,?,?,?,?,?,?,?)");
  st.text(1, j.id).text(2, j.driver).text(3, j.code_hash).text(4, j.owner_host).num(5, j.owner_port).text(6, j.state);
  st.num(7, static_cast<std::int64_t>(j.leases_granted)).num(8, static_cast<std::int64_t>(j.started));
  st.num(9, static_cast<std::int64_t>(j.ended)).step(db_);
}

void HeadStore::put_kv(const std::string& key, const std::string& value) {
  Stmt(db_, "INSERT OR REPLACE INTO kv(key, value) VALUES(?,?)").text(1, key).blob(2, value).step(db_);
}

void HeadStore::put_counter(const std::string& name, std::uint64_t value) {
  Stmt(db_, "INSERT OR REPLACE INTO counters(name, value) VALUES(?,?)").text(1, name).num(2, static_cast<std::int64_t>(value)).step(db_);
}

void HeadStore::put_document(const std::string& name, const std::string& value) {
  Stmt(db_, "INSERT OR REPLACE INTO documents(name, value) VALUES(?,?)").text(1, name).text(2, value).step(db_);
}

std::string HeadStore::document(const std::string& name) {
  Stmt st(db_, "SELECT value FROM documents WHERE name = ?");
  st.text(1, name);
  return st.step(db_) ? st.col_text(0) : std::string();
}

std::vector<StoredNode> HeadStore::nodes() {
  std::vector<StoredNode> out;
  Stmt st(db_, "SELECT idx, name, info, host, alive FROM nodes ORDER BY idx");
  while (st.step(db_))
    out.push_back(StoredNode{static_cast<std::uint32_t>(st.col_num(0)), st.col_text(1), st.col_text(2), st.col_text(3),
                             st.col_num(4) != 0});
  return out;
}

std::vector<StoredJob> HeadStore::jobs() {
  std::vector<StoredJob> out;
  Stmt st(db_, "SELECT id, driver, code_hash, owner_host, owner_port, state, leases_granted, started, ended FROM jobs");
  while (st.step(db_)) {
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
  while (st.step(db_)) out[st.col_text(0)] = st.col_text(1);
  return out;
}

std::uint64_t HeadStore::counter(const std::string& name) {
  Stmt st(db_, "SELECT value FROM counters WHERE name = ?");
  st.text(1, name);
  return st.step(db_) ? static_cast<std::uint64_t>(st.col_num(0)) : 0;
}

}  // namespace iogrid::runtime::head
