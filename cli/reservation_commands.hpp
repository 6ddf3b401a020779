// `iogrid cluster create|list|delete` (reservations), `iogrid ledger` and `iogrid verify`.
#pragma once

#include <string>
#include <vector>

namespace iogrid::cli {

int cluster_command(const std::vector<std::string>& args);
int ledger_command(const std::vector<std::string>& args);
// `iogrid market`: posted prices, their history, a quote (scheduler/pricing.hpp).
int market_command(const std::vector<std::string>& args);
// `iogrid verify`: challenges nodes' GPUs (gpu/verify/challenge.hpp); exit status 1 when any fails.
int verify_command(const std::vector<std::string>& args);
// "90s", "30m", "2h", "1d" or plain seconds; throws std::invalid_argument naming the flag.
double parse_duration_s(const std::string& flag, const std::string& v);

}  // namespace iogrid::cli
