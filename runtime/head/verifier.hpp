// Verifier: the head's side of GPU verification (the protocol is gpu/verify/challenge.hpp). It issues one
// seeded GEMM challenge per GPU, asks for rows only after the node committed to its answer, and turns the
// opened rows into a verdict. Requests from an operator (`iogrid verify`) are batches: one answer when every
// challenge of the batch has a verdict.
// Seeds and row choices come from the injected entropy (tests fix it); no I/O.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "gpu/verify/challenge.hpp"
#include "runtime/head/job_table.hpp"

namespace iogrid::runtime::head {

struct Challenge {
  std::uint64_t id = 0;
  std::uint32_t node = 0, device = 0;
  gpu::verify::Challenge challenge;
};

struct VerificationDone {
  std::uint32_t node = 0, device = 0;
  gpu::verify::Verdict verdict;
  std::uint64_t batch = 0;  // the operator request it answers, 0: a join-time check
};

class Verifier {
 public:
  using Entropy = std::function<std::uint64_t()>;
  explicit Verifier(Entropy entropy);

  // A challenge of size n x n for GPU `device` of `node`, part of `batch` (0: none).
  Challenge challenge(std::uint32_t node, std::uint32_t device, int n, std::uint64_t batch);
  // The node committed: the rows to open, or (a refusal, a malformed commitment, a stranger answering) a
  // finished verification. `from` is the node that answered.
  struct Commit {
    std::vector<int> rows;
    std::optional<VerificationDone> failed;
  };
  std::optional<Commit> commit(std::uint64_t id, std::uint32_t from, const std::vector<std::uint8_t>& root,
                               double seconds, const std::string& error);
  // The node opened its rows: the verdict (nullopt when the id is unknown or `from` is not its node).
  std::optional<VerificationDone> open(std::uint64_t id, std::uint32_t from,
                                       const std::vector<gpu::verify::Prover::Opening>& openings,
                                       const std::string& claimed_model);
  // The GPU a challenge in flight is for (nullopt: unknown id).
  std::optional<std::pair<std::uint32_t, std::uint32_t>> target(std::uint64_t id) const;

  // Operator batches: who asked, and the verdicts collected so far.
  std::uint64_t open_batch(OwnerId requester, std::uint64_t request_id);
  void expect(std::uint64_t batch, std::size_t challenges);
  void cancel_batch(std::uint64_t batch) { batches_.erase(batch); }
  struct BatchDone {
    OwnerId requester = 0;
    std::uint64_t request_id = 0;
    nlohmann::json results;
  };
  // Records a verdict of a batch; the whole batch once it is complete.
  std::optional<BatchDone> record(const VerificationDone& done, const std::string& node_name);

 private:
  struct InFlight {
    std::uint32_t node = 0, device = 0;
    gpu::verify::Challenge challenge;
    gpu::verify::Commitment commitment;
    std::vector<int> rows;
    std::uint64_t batch = 0;
  };
  struct Batch {
    OwnerId requester = 0;
    std::uint64_t request_id = 0;
    std::size_t remaining = 0;
    nlohmann::json results = nlohmann::json::array();
  };
  Entropy entropy_;
  std::uint64_t counter_ = 0;
  std::map<std::uint64_t, InFlight> flights_;
  std::map<std::uint64_t, Batch> batches_;
};

}  // namespace iogrid::runtime::head
