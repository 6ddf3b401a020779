#include "cli/ledger_commands.hpp"

#include <ctime>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <map>
#include <sstream>
#include <stdexcept>

#include "runtime/head/journal.hpp"

namespace iogrid::cli {

namespace {

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::invalid_argument("cannot read " + path);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string day_of(std::int64_t ms) {
  const std::time_t t = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[16];
  std::strftime(buf, sizeof buf, "%Y-%m-%d", &tm);
  return buf;
}

std::string dollars(std::int64_t micro) {
  std::ostringstream s;
  s << std::fixed << std::setprecision(6) << static_cast<double>(micro) / 1e6;
  return s.str();
}

std::string csv(const std::string& v) {
  if (v.find_first_of(",\"\n") == std::string::npos) return v;
  std::string out = "\"";
  for (char c : v) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

// The value after flag args[i] (advancing i); throws naming the flag when there is none.
std::string value_of(const std::vector<std::string>& args, std::size_t& i) {
  if (i + 1 >= args.size()) throw std::invalid_argument(args[i] + " needs a value");
  return args[++i];
}

std::string journal_db(const std::string& state) {
  if (state.empty()) throw std::invalid_argument("--state DIR is required: the head's state directory (its --state)");
  const auto db = (std::filesystem::path(state) / "head.db").string();
  if (!std::filesystem::exists(db)) throw std::invalid_argument("no head state in " + state + " (no head.db there)");
  return db;
}

}  // namespace

int ledger_verify_command(const std::vector<std::string>& args) {
  std::string state, key;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const auto f = args[i];
    auto value = [&] { return value_of(args, i); };
    if (f == "--help" || f == "-h") {
      std::cout << "usage: iogrid ledger verify --state DIR [--public-key F]\n"
                   "Checks the head's ledger journal in DIR/head.db: every entry's hash against its contents and the\n"
                   "entry before it, that each charge equals the provider's earning plus the network's fee, and every\n"
                   "checkpoint's signature with the head's public key (default DIR/ledger.key.pub; pass a copy kept\n"
                   "elsewhere, since whoever can change the database can change that file too). Names the first\n"
                   "broken entry; exit status 1 when anything is broken. Safe while the head runs.\n";
      return 0;
    }
    if (f == "--state") state = value();
    else if (f == "--public-key") key = value();
    else throw std::invalid_argument("unknown option '" + f + "' for iogrid ledger verify");
  }
  const auto db = journal_db(state);
  if (key.empty()) key = (std::filesystem::path(state) / "ledger.key.pub").string();
  const auto r = runtime::head::Journal::verify(db, read_all(key));
  if (!r.ok) {
    std::cout << "BROKEN" << (r.broken ? " at entry " + std::to_string(r.broken) : std::string()) << ": " << r.why << "\n";
    return 1;
  }
  std::cout << "OK: " << r.entries << " entries, chained; " << r.checkpoints << " signed checkpoint"
            << (r.checkpoints == 1 ? "" : "s");
  if (r.unsigned_tail) std::cout << "; " << r.unsigned_tail << " entries after the last checkpoint (not signed yet)";
  std::cout << "; checked in " << std::fixed << std::setprecision(3) << r.seconds << " s\n";
  return 0;
}

int ledger_entries_command(const std::vector<std::string>& args) {
  std::string state, provider, job, user, by;
  bool as_csv = false;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const auto f = args[i];
    auto value = [&] { return value_of(args, i); };
    if (f == "--help" || f == "-h") {
      std::cout << "usage: iogrid ledger entries --state DIR [--provider NODE] [--job J] [--user U] [--by day] [--csv]\n"
                   "The journal's entries (one per lease and reservation slice): time, job, user, provider node, GPU\n"
                   "model, GPUs, seconds, price per GPU-hour, tier, and the charge split into the provider's earning\n"
                   "and the network's fee (dollars). --job J is the job's provenance: which providers ran its work.\n"
                   "--by day sums per provider and UTC day (a provider's statement). --csv for a spreadsheet.\n"
                   "Spot checks that caught a provider are entries of kind 'check' (no money moves); each lease entry's\n"
                   "detail is its provider's verification state and reputation when it ended.\n";
      return 0;
    }
    if (f == "--state") state = value();
    else if (f == "--provider") provider = value();
    else if (f == "--job") job = value();
    else if (f == "--user") user = value();
    else if (f == "--by") {
      by = value();
      if (by != "day") throw std::invalid_argument("--by takes 'day'");
    } else if (f == "--csv") as_csv = true;
    else throw std::invalid_argument("unknown option '" + f + "' for iogrid ledger entries");
  }
  std::vector<runtime::head::JournalEntry> rows;
  for (auto& e : runtime::head::Journal::read(journal_db(state)))
    if ((provider.empty() || e.node == provider) && (job.empty() || e.job == job) && (user.empty() || e.user == user))
      rows.push_back(std::move(e));
  if (by == "day") {
    struct Sum {
      std::uint64_t entries = 0;
      double gpu_seconds = 0;
      std::int64_t charge = 0, earning = 0, fee = 0;
    };
    std::map<std::pair<std::string, std::string>, Sum> sums;  // (node, day)
    for (const auto& e : rows) {
      auto& s = sums[{e.node, day_of(e.time_ms)}];
      ++s.entries;
      s.gpu_seconds += e.gpus * e.seconds;
      s.charge += e.charge;
      s.earning += e.earning;
      s.fee += e.fee;
    }
    if (as_csv) std::cout << "provider,day,entries,gpu_seconds,charged,earned,fee\n";
    else
      std::cout << std::left << std::setw(16) << "PROVIDER" << std::setw(12) << "DAY" << std::right << std::setw(9) << "ENTRIES"
                << std::setw(14) << "GPU-SECONDS" << std::setw(14) << "CHARGED" << std::setw(14) << "EARNED" << std::setw(12) << "FEE" << "\n";
    for (const auto& [k, s] : sums) {
      std::ostringstream gs;
      gs << std::fixed << std::setprecision(1) << s.gpu_seconds;
      if (as_csv)
        std::cout << csv(k.first) << "," << k.second << "," << s.entries << "," << gs.str() << "," << dollars(s.charge) << ","
                  << dollars(s.earning) << "," << dollars(s.fee) << "\n";
      else
        std::cout << std::left << std::setw(16) << k.first << std::setw(12) << k.second << std::right << std::setw(9) << s.entries
                  << std::setw(14) << gs.str() << std::setw(14) << dollars(s.charge) << std::setw(14) << dollars(s.earning)
                  << std::setw(12) << dollars(s.fee) << "\n";
    }
    if (sums.empty() && !as_csv) std::cout << "(no entries)\n";
    return 0;
  }
  if (as_csv) std::cout << "seq,time_ms,kind,job,user,reservation,provider,gpu_model,gpus,seconds,price_per_gpu_hour,tier,detail,charged,earned,fee\n";
  else
    std::cout << std::left << std::setw(7) << "SEQ" << std::setw(12) << "DAY" << std::setw(10) << "JOB" << std::setw(12) << "USER"
              << std::setw(14) << "PROVIDER" << std::setw(10) << "MODEL" << std::right << std::setw(6) << "GPUS" << std::setw(10)
              << "SECONDS" << std::setw(10) << "PRICE/H" << std::setw(13) << "CHARGED" << std::setw(13) << "EARNED" << "\n";
  for (const auto& e : rows) {
    if (as_csv) {
      std::cout << e.seq << "," << e.time_ms << "," << e.kind << "," << csv(e.job) << "," << csv(e.user) << "," << csv(e.reservation)
                << "," << csv(e.node) << "," << csv(e.gpu_model) << "," << e.gpus << "," << e.seconds << "," << e.price << ","
                << e.tier << "," << csv(e.detail) << "," << dollars(e.charge) << "," << dollars(e.earning) << "," << dollars(e.fee) << "\n";
      continue;
    }
    std::ostringstream secs, price;
    secs << std::fixed << std::setprecision(1) << e.seconds;
    price << std::fixed << std::setprecision(2) << e.price;
    std::cout << std::left << std::setw(7) << e.seq << std::setw(12) << day_of(e.time_ms)
              << std::setw(10) << (e.job.empty() ? e.reservation : e.job) << std::setw(12) << e.user << std::setw(14) << e.node
              << std::setw(10) << (e.gpu_model.empty() ? "-" : e.gpu_model) << std::right << std::setw(6) << e.gpus << std::setw(10)
              << secs.str() << std::setw(10) << price.str() << std::setw(13) << dollars(e.charge) << std::setw(13)
              << dollars(e.earning) << "\n";
  }
  if (rows.empty() && !as_csv) std::cout << "(no entries)\n";
  return 0;
}

int ledger_provenance_command(const std::vector<std::string>& args) {
  std::string state, job;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const auto f = args[i];
    if (f == "--help" || f == "-h") {
      std::cout << "usage: iogrid ledger provenance --state DIR --job J\n"
                   "Which providers ran a job's work, from the journal: per provider its leases, GPU-seconds and charge,\n"
                   "its verification state and reputation when its last lease ended, and the spot checks that caught it\n"
                   "(with what the other providers agreed on) or stayed unsettled.\n";
      return 0;
    }
    if (f == "--state") state = value_of(args, i);
    else if (f == "--job") job = value_of(args, i);
    else throw std::invalid_argument("unknown option '" + f + "' for iogrid ledger provenance");
  }
  if (job.empty()) throw std::invalid_argument("--job J is required");
  struct Provider {
    std::uint64_t leases = 0, caught = 0;
    double gpu_seconds = 0;
    std::int64_t charge = 0;
    std::string model, state;
  };
  std::map<std::string, Provider> providers;
  std::vector<runtime::head::JournalEntry> checks;
  std::string user;
  for (auto& e : runtime::head::Journal::read(journal_db(state))) {
    if (e.job != job) continue;
    user = e.user;
    if (e.kind == "check") {
      if (!e.node.empty()) ++providers[e.node].caught;
      checks.push_back(std::move(e));
      continue;
    }
    auto& p = providers[e.node];
    ++p.leases;
    p.gpu_seconds += e.gpus * e.seconds;
    p.charge += e.charge;
    if (!e.gpu_model.empty()) p.model = e.gpu_model;
    if (!e.detail.empty()) p.state = e.detail;
  }
  if (providers.empty() && checks.empty()) {
    std::cout << "no entries for job " << job << " in the journal\n";
    return 1;
  }
  std::cout << job << " (user " << (user.empty() ? "-" : user) << "): " << providers.size() << " provider"
            << (providers.size() == 1 ? "" : "s") << "\n";
  std::cout << std::left << std::setw(16) << "PROVIDER" << std::setw(10) << "MODEL" << std::right << std::setw(8) << "LEASES"
            << std::setw(13) << "GPU-SECONDS" << std::setw(13) << "CHARGED" << "  " << std::left << std::setw(12) << "SPOT CHECKS"
            << "STATE AT ITS LAST LEASE\n";
  for (const auto& [name, p] : providers) {
    std::ostringstream gs;
    gs << std::fixed << std::setprecision(1) << p.gpu_seconds;
    std::cout << std::left << std::setw(16) << (name.empty() ? "-" : name) << std::setw(10) << (p.model.empty() ? "-" : p.model)
              << std::right << std::setw(8) << p.leases << std::setw(13) << gs.str() << std::setw(13) << dollars(p.charge) << "  "
              << std::left << std::setw(12) << (p.caught ? "caught " + std::to_string(p.caught) : std::string("-"))
              << (p.state.empty() ? "-" : p.state) << "\n";
  }
  for (const auto& c : checks) std::cout << "check " << c.seq << " " << day_of(c.time_ms) << ": " << c.detail << "\n";
  return 0;
}

}  // namespace iogrid::cli
