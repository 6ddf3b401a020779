// Thin helpers over SQLite's C API for the head's databases (HeadStore, History): open with the write-ahead
// log, run a statement, bind and read columns. Errors throw iogrid::Error with the database's path.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <filesystem>
#include <string>

#include "iogrid/core/errors.hpp"

namespace iogrid::runtime::head::sql {

// Opens (creating) `path` in WAL mode, or an in-memory database when `path` is ":memory:".
inline sqlite3* open(const std::string& path, const std::string& what) {
  std::error_code ec;  // a folder that cannot be made shows as the open's failure below
  if (path != ":memory:") std::filesystem::create_directories(std::filesystem::path(path).parent_path(), ec);
  sqlite3* db = nullptr;
  if (sqlite3_open(path.c_str(), &db) != SQLITE_OK) {
    std::string why = db ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close(db);
    throw core::Error("iogrid: cannot open the " + what + " " + path + ": " + why);
  }
  return db;
}

inline void exec(sqlite3* db, const char* sql, const std::string& path) {
  char* err = nullptr;
  if (sqlite3_exec(db, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string why = err ? err : "unknown error";
    sqlite3_free(err);
    throw core::Error("iogrid: " + path + ": " + why);
  }
}

struct Stmt {
  sqlite3* db;
  sqlite3_stmt* s = nullptr;
  Stmt(sqlite3* d, const char* sql) : db(d) {
    if (sqlite3_prepare_v2(db, sql, -1, &s, nullptr) != SQLITE_OK)
      throw core::Error(std::string("iogrid: head state: ") + sqlite3_errmsg(db));
  }
  ~Stmt() { sqlite3_finalize(s); }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
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
  Stmt& real(int i, double v) {
    sqlite3_bind_double(s, i, v);
    return *this;
  }
  // Steps once: true while it yields a row.
  bool step() {
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    throw core::Error(std::string("iogrid: head state: ") + sqlite3_errmsg(db));
  }
  // Makes the statement ready to bind and run again.
  void reset() {
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
  }
  std::string col_text(int i) {
    auto* p = sqlite3_column_blob(s, i);
    return p ? std::string(static_cast<const char*>(p), static_cast<std::size_t>(sqlite3_column_bytes(s, i))) : std::string();
  }
  std::int64_t col_num(int i) { return sqlite3_column_int64(s, i); }
  double col_real(int i) { return sqlite3_column_double(s, i); }
};

}  // namespace iogrid::runtime::head::sql
