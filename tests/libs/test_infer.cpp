// Batch inference: outputs in input order equal the model's own predictions, in-flight blocks bounded, the
// pool grows with the backlog and stays within its bounds.
#include <catch2/catch.hpp>

#include <iogrid/infer.hpp>
#include <iogrid/iogrid.hpp>

#include "../sdk/cluster_fixture.hpp"
#include "synthetic.hpp"

TEST_CASE("map_batches: predictions in input order, bounded blocks in flight, a pool within its bounds", "[infer]") {
  Cluster cl({.nodes = {{.name = "n", .num_cpus = 3}}});
  auto d = synthetic(1000, 32, 4, 5);
  iogrid::nn::Model m({.layers = {32, 16, 4}});
  iogrid::nn::Optimizer opt(m, {.lr = 0.05f});
  for (int at = 0; at + 50 <= 1000; at += 50) {
    m.train_batch(d.images.data<std::uint8_t>() + at * 32, d.labels.data<std::int32_t>() + at, 50);
    opt.step();
  }
  auto expected = m.predict(d.images.data<std::uint8_t>(), 1000);
  iogrid::train::Checkpoint ck;
  ck.model = m.spec();
  ck.weights = m.weights();

  auto r = iogrid::infer::map_batches(d, ck, {.batch_size = 10, .block_size = 37, .max_actors = 3, .max_blocks_in_flight = 3,
                                              .progress = false});
  CHECK(r.predictions == expected);
  CHECK(r.max_in_flight <= 3);
  CHECK(r.max_in_flight >= 2);
  CHECK(r.actors >= 2);  // 28 blocks of backlog: the pool grew
  CHECK(r.actors <= 3);
  CHECK(r.accuracy > 0.9);
  CHECK(r.images_per_s > 0);

  // One actor, one block in flight at a time: same answer.
  auto one = iogrid::infer::map_batches(d, ck, {.block_size = 100, .max_actors = 1, .max_blocks_in_flight = 1, .progress = false});
  CHECK(one.predictions == expected);
  CHECK(one.actors == 1);
  CHECK(one.max_in_flight == 1);

  ck.model.layers = {10, 4};
  CHECK_THROWS_WITH(iogrid::infer::map_batches(d, ck), Catch::Contains("takes 10 features"));
}
