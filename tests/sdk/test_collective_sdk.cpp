// Collective groups across actors of the embedded cluster, meeting through the head's key-value store.
#include <catch2/catch.hpp>
#include <chrono>

#include "cluster_fixture.hpp"

using namespace std::chrono_literals;
using iogrid::collective::Group;
using iogrid::collective::ReduceOp;

namespace {
struct Member {
  int rank = 0, size = 0;
  Member(int r, int s) : rank(r), size(s) {}
  // One round: the mean of every member's gradient, the ranks gathered, rank 0's weights broadcast.
  std::vector<double> round(std::string group) {
    auto g = Group::join(group, rank, size, {.timeout = 20s});
    std::vector<float> grad(1000, float(rank + 1));
    g.allreduce(grad, ReduceOp::mean);
    auto ranks = g.allgather(std::vector<std::int32_t>{rank});
    std::vector<std::int64_t> weights(3, rank == 0 ? 7 : 0);
    g.broadcast(weights, 0);
    g.barrier();
    return {double(grad[0]), double(grad[999]), double(ranks.size()), double(ranks[std::size_t(size - 1)]),
            double(weights[2]), double(g.size())};
  }
  int lonely(std::string group) {
    try {
      Group::join(group, rank, size + 1, {.timeout = 300ms});
      return 0;
    } catch (const iogrid::CollectiveError& e) {
      return std::string(e.what()).find("timed out") != std::string::npos ? 1 : 2;
    }
  }
};
IOGRID_REMOTE(&Member::round);
IOGRID_REMOTE(&Member::lonely);
}  // namespace

TEST_CASE("actors form a collective group through the head's key-value store", "[collective][sdk]") {
  Cluster c;
  const int n = 4;
  std::vector<iogrid::ActorHandle<Member>> members;
  for (int r = 0; r < n; ++r) members.push_back(iogrid::actor<Member>(r, n).remote());
  std::vector<iogrid::ObjectRef<std::vector<double>>> rounds;
  for (auto& m : members) rounds.push_back(m.call(&Member::round).remote(std::string("sdk-group-1")));
  for (auto& r : rounds) {
    auto v = iogrid::get(r, 60s);
    CHECK(v[0] == Approx(2.5));  // mean of 1..4
    CHECK(v[1] == Approx(2.5));
    CHECK(v[2] == 4);
    CHECK(v[3] == 3);
    CHECK(v[4] == 7);
    CHECK(v[5] == 4);
  }
  // A member whose peers never come: a CollectiveError naming the timeout, not a hang.
  CHECK(iogrid::get(members[0].call(&Member::lonely).remote(std::string("sdk-group-alone")), 30s) == 1);
}
