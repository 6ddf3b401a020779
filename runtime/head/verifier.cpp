#include "runtime/head/verifier.hpp"

#include <algorithm>

namespace iogrid::runtime::head {

Verifier::Verifier(Entropy entropy) : entropy_(std::move(entropy)) {}

Challenge Verifier::challenge(std::uint32_t node, std::uint32_t device, int n, std::uint64_t batch) {
  Challenge c;
  c.id = ++counter_;
  c.node = node;
  c.device = device;
  c.challenge = {entropy_(), n};
  InFlight f;
  f.node = node;
  f.device = device;
  f.challenge = c.challenge;
  f.batch = batch;
  flights_[c.id] = f;
  return c;
}

std::optional<Verifier::Commit> Verifier::commit(std::uint64_t id, std::uint32_t from, const std::vector<std::uint8_t>& root,
                                                 double seconds, const std::string& error) {
  auto it = flights_.find(id);
  if (it == flights_.end() || it->second.node != from) return std::nullopt;
  auto fail = [&](const std::string& why) {
    Commit c;
    c.failed = VerificationDone{it->second.node, it->second.device, {false, 0, why}, it->second.batch};
    flights_.erase(it);
    return c;
  };
  if (!error.empty()) return fail("the node could not run the challenge: " + error);
  if (root.size() != it->second.commitment.root.size()) return fail("wrong answer: a malformed commitment");
  std::copy(root.begin(), root.end(), it->second.commitment.root.begin());
  it->second.commitment.seconds = seconds;
  // Drawn only now, after the commitment.
  it->second.rows = gpu::verify::draw_rows(it->second.challenge.n, 16, entropy_());
  return Commit{it->second.rows, std::nullopt};
}

std::optional<VerificationDone> Verifier::open(std::uint64_t id, std::uint32_t from,
                                               const std::vector<gpu::verify::Prover::Opening>& openings,
                                               const std::string& claimed_model) {
  auto it = flights_.find(id);
  if (it == flights_.end() || it->second.node != from || it->second.rows.empty()) return std::nullopt;
  const auto& f = it->second;
  VerificationDone done{f.node, f.device, gpu::verify::check(f.challenge, f.commitment, f.rows, openings, claimed_model),
                        f.batch};
  flights_.erase(it);
  return done;
}

std::optional<std::pair<std::uint32_t, std::uint32_t>> Verifier::target(std::uint64_t id) const {
  auto it = flights_.find(id);
  if (it == flights_.end()) return std::nullopt;
  return std::make_pair(it->second.node, it->second.device);
}

std::uint64_t Verifier::open_batch(OwnerId requester, std::uint64_t request_id) {
  const auto id = ++counter_;
  batches_[id] = Batch{requester, request_id, 0, nlohmann::json::array()};
  return id;
}

void Verifier::expect(std::uint64_t batch, std::size_t challenges) {
  if (auto it = batches_.find(batch); it != batches_.end()) it->second.remaining += challenges;
}

std::optional<Verifier::BatchDone> Verifier::record(const VerificationDone& done, const std::string& node_name) {
  auto b = batches_.find(done.batch);
  if (!done.batch || b == batches_.end()) return std::nullopt;
  b->second.results.push_back({{"node", node_name},
                               {"device", done.device},
                               {"verified", done.verdict.verified},
                               {"tflops", done.verdict.tflops},
                               {"reason", done.verdict.reason}});
  if (b->second.remaining > 0) --b->second.remaining;
  if (b->second.remaining > 0) return std::nullopt;
  BatchDone out{b->second.requester, b->second.request_id, std::move(b->second.results)};
  batches_.erase(b);
  return out;
}

}  // namespace iogrid::runtime::head
