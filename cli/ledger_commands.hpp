// `iogrid ledger verify` and `iogrid ledger entries`: the head's journal (runtime/head/journal.hpp), read from
// its state directory.
#pragma once

#include <string>
#include <vector>

namespace iogrid::cli {

// Checks the chain, every entry's double entry and the signed checkpoints; exit status 1 when broken.
int ledger_verify_command(const std::vector<std::string>& args);
// Entries (filtered by provider, job or user), or per provider and day with --by day; --csv for a spreadsheet.
int ledger_entries_command(const std::vector<std::string>& args);
// A job's providers: leases, GPU-seconds, charge, state at the time, spot checks that caught them.
int ledger_provenance_command(const std::vector<std::string>& args);

}  // namespace iogrid::cli
