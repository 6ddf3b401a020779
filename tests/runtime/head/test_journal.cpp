// The ledger's journal (runtime/head/journal.hpp): entries hash-chained, checkpoints signed, every tampering
// named by `verify`; the double-entry split (scheduler/ledger.hpp).
#include <catch2/catch.hpp>
#include <sqlite3.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "runtime/head/journal.hpp"
#include "scheduler/ledger.hpp"

using iogrid::runtime::head::Journal;
using iogrid::runtime::head::JournalEntry;
namespace fs = std::filesystem;

namespace {

struct Dir {
  fs::path path = fs::temp_directory_path() / ("iogrid-journal-" + std::to_string(::getpid()) + "-" + std::to_string(rand()));
  Dir() { fs::create_directories(path); }
  ~Dir() { fs::remove_all(path); }
  std::string db() const { return (path / "head.db").string(); }
  std::string key() const { return (path / "ledger.key").string(); }
  std::string pub() const {
    std::ifstream in(key() + ".pub");
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
  }
};

JournalEntry lease(const std::string& job, const std::string& node, double seconds, double price, double fee_fraction = 0.05) {
  JournalEntry e;
  e.kind = "lease";
  e.job = job;
  e.user = "alice";
  e.node = node;
  e.gpu_model = "RTX4090";
  e.gpus = 1;
  e.seconds = seconds;
  e.price = price;
  const auto s = iogrid::sched::split_charge(seconds * price / 3600.0, fee_fraction);
  e.charge = s.charge;
  e.earning = s.earning;
  e.fee = s.fee;
  return e;
}

void sql(const std::string& db, const std::string& statement) {
  sqlite3* h = nullptr;
  REQUIRE(sqlite3_open(db.c_str(), &h) == SQLITE_OK);
  char* err = nullptr;
  const int rc = sqlite3_exec(h, statement.c_str(), nullptr, nullptr, &err);
  INFO((err ? err : ""));
  sqlite3_free(err);
  sqlite3_close(h);
  REQUIRE(rc == SQLITE_OK);
}

// A journal of `n` leases, signed after entry `signed_at` (0: at the end), closed.
void fill(const Dir& d, int n, int signed_at = 0) {
  Journal j(d.db(), d.key());
  for (int i = 1; i <= n; ++i) {
    j.append(lease("job-" + std::to_string(i % 3 + 1), i % 2 ? "gpu-a" : "gpu-b", 60.0 * i, 2.5));
    if (i == signed_at) j.checkpoint();
  }
}

}  // namespace

TEST_CASE("the double-entry split: a charge is exactly the provider's earning plus the network's fee", "[ledger]") {
  const auto s = iogrid::sched::split_charge(1.2345678, 0.05);
  CHECK(s.charge == 1234568);  // micro-dollars, rounded
  CHECK(s.fee == 61728);
  CHECK(s.earning == s.charge - s.fee);
  CHECK(iogrid::sched::split_charge(3.0, 0).fee == 0);
  CHECK(iogrid::sched::split_charge(3.0, 0).earning == 3000000);
  CHECK(iogrid::sched::split_charge(-1.0, 0.1).charge == 0);  // never negative
  // The ledger keeps each charge for the journal, split by its fee; a lease inside a reservation costs nothing.
  iogrid::sched::Ledger l(0.1);
  l.lease("job-1", "", "gpu-a", 2, 1800, 4.0);  // 1 GPU-hour... x2 x 0.5 h x $4 = $4
  l.lease("job-2", "c-1", "gpu-a", 1, 100, 4.0);
  l.reserved("c-1", "gpu-b", 1, 3600, 2.0);
  const auto charges = l.take_charges();
  REQUIRE(charges.size() == 3);
  CHECK(charges[0].split.charge == 4000000);
  CHECK(charges[0].split.fee == 400000);
  CHECK(charges[1].split.charge == 0);
  CHECK(charges[1].reservation == "c-1");
  CHECK(charges[2].kind == "reservation");
  CHECK(charges[2].split.earning == 1800000);
  CHECK(l.take_charges().empty());
  CHECK(l.total("node", "gpu-a").cost == Approx(3.6));  // the provider's total is its earnings
  CHECK(l.total("job", "job-1").cost == Approx(4.0));
}

TEST_CASE("a journal verifies when untouched, across a reopen, with its unsigned tail counted", "[ledger]") {
  Dir d;
  fill(d, 50, 40);
  {
    auto r = Journal::verify(d.db(), d.pub());
    INFO(r.why);
    CHECK(r.ok);
    CHECK(r.entries == 50);
    CHECK(r.checkpoints == 2);  // after entry 40, and when it closed
    CHECK(r.unsigned_tail == 0);
  }
  {
    Journal j(d.db(), d.key());  // the same key, the chain continued
    CHECK(j.last() == 50);
    CHECK(j.append(lease("job-9", "gpu-a", 10, 1)) == 51);
    CHECK(Journal::verify(d.db(), d.pub()).unsigned_tail == 1);
  }
  auto r = Journal::verify(d.db(), d.pub());
  CHECK(r.ok);
  CHECK(r.entries == 51);
  const auto rows = Journal::read(d.db(), 51);
  REQUIRE(rows.size() == 1);
  CHECK(rows[0].job == "job-9");
  CHECK(rows[0].time_ms > 0);
}

TEST_CASE("verify names the entry someone changed, removed or unbalanced in the SQLite file", "[ledger]") {
  SECTION("a changed price") {
    Dir d;
    fill(d, 30);
    sql(d.db(), "UPDATE journal SET body = replace(body, '\"price\":2.5', '\"price\":0.5') WHERE seq = 17");
    auto r = Journal::verify(d.db(), d.pub());
    CHECK_FALSE(r.ok);
    CHECK(r.broken == 17);
    CHECK(r.why.find("entry 17 was changed") != std::string::npos);
  }
  SECTION("a removed entry") {
    Dir d;
    fill(d, 30);
    sql(d.db(), "DELETE FROM journal WHERE seq = 9");
    auto r = Journal::verify(d.db(), d.pub());
    CHECK_FALSE(r.ok);
    CHECK(r.broken == 9);
  }
  SECTION("entries cut from the end after a checkpoint") {
    Dir d;
    fill(d, 30);
    sql(d.db(), "DELETE FROM journal WHERE seq > 25");
    auto r = Journal::verify(d.db(), d.pub());
    CHECK_FALSE(r.ok);
    CHECK(r.broken == 26);
  }
  SECTION("a rewritten entry whose hash and every later one were recomputed: the signed checkpoint catches it") {
    Dir d;
    fill(d, 30, 10);  // checkpoints after 10 and 30
    // Someone with the file but not the key rebuilds the chain with entry 12 charging nothing, and puts the
    // head's signed checkpoints back.
    auto rows = Journal::read(d.db());
    sql(d.db(), "CREATE TABLE saved AS SELECT * FROM journal_checkpoints");
    sql(d.db(), "DELETE FROM journal");
    sql(d.db(), "DELETE FROM journal_checkpoints");
    {
      Dir other;
      Journal forged(d.db(), other.key());
      for (auto& e : rows) {
        if (e.seq == 12) e.charge = e.earning = e.fee = 0;
        forged.append(e);
      }
    }
    sql(d.db(), "DELETE FROM journal_checkpoints; INSERT INTO journal_checkpoints SELECT * FROM saved");
    auto r = Journal::verify(d.db(), d.pub());
    CHECK_FALSE(r.ok);
    CHECK(r.broken == 11);  // somewhere after the last checkpoint that still holds
    CHECK(r.why.find("does not reach the signed checkpoint at entry 30") != std::string::npos);
  }
  SECTION("a charge that does not balance, its hash recomputed for the entries after it") {
    Dir d;
    {
      Journal j(d.db(), d.key());
      auto e = lease("job-1", "gpu-a", 60, 1);
      e.earning += 5;  // the provider credited more than the user paid, minus the fee
      j.append(e);
    }
    auto r = Journal::verify(d.db(), d.pub());
    CHECK_FALSE(r.ok);
    CHECK(r.broken == 1);
    CHECK(r.why.find("does not balance") != std::string::npos);
  }
  SECTION("a database without a journal: said so, not a SQL error") {
    Dir d;
    sql(d.db(), "CREATE TABLE nodes (id INTEGER)");
    CHECK_THROWS_WITH(Journal::verify(d.db(), ""), Catch::Contains("holds no ledger journal"));
    CHECK_THROWS_WITH(Journal::read(d.db()), Catch::Contains("holds no ledger journal"));
  }
  SECTION("another head's public key") {
    Dir d, other;
    fill(d, 3);
    fill(other, 1);
    auto r = Journal::verify(d.db(), other.pub());
    CHECK_FALSE(r.ok);
    CHECK(r.why.find("not signed by this head's key") != std::string::npos);
  }
}
