#include <catch2/catch.hpp>

#include <capnp/message.h>

#include "runtime/proto/convert.hpp"

using namespace iogrid;

TEST_CASE("resource requests survive the wire", "[proto]") {
  sched::ResourceRequest r;
  r.cpus = 2500;
  r.memory_mib = 4096;
  r.gpus = 250;
  r.gpu_models = {"A100", "H100"};
  r.min_gpu_memory_mib = 40960;
  r.min_compute_capability = 8.0;
  r.custom["tpu"] = 1000;
  r.labels["region"] = "eu";
  r.node = "n1";
  auto back = proto::decode_request(proto::encode(r));
  REQUIRE(back.key() == r.key());
  REQUIRE(back.gpu_models == r.gpu_models);
}

TEST_CASE("node info survives the wire", "[proto]") {
  sched::Node n;
  n.index = 7;
  n.name = "rig-7";
  n.total.cpus = 16000;
  n.total.memory_mib = 65536;
  n.total.custom["ssd"] = 2000;
  n.available = n.total;
  n.available.cpus = 3000;
  n.gpus.push_back(sched::Gpu{"RTX4090", 24576, 8.9, 82.6, false, 500});
  n.labels["provider"] = "alice";
  n.price_per_gpu_hour = 0.35;
  n.reputation = 0.9;
  auto b = proto::decode_node(proto::encode(n));
  REQUIRE(b.index == 7);
  REQUIRE(b.name == "rig-7");
  REQUIRE(b.available.cpus == 3000);
  REQUIRE(b.total.custom.at("ssd") == 2000);
  REQUIRE(b.gpus.size() == 1);
  REQUIRE(b.gpus[0].model == "RTX4090");
  REQUIRE(b.gpus[0].free == 500);
  REQUIRE_FALSE(b.gpus[0].verified);
  REQUIRE(b.labels.at("provider") == "alice");
  REQUIRE(b.price_per_gpu_hour == Approx(0.35));
}

TEST_CASE("malformed bytes are rejected, not trusted", "[proto]") {
  REQUIRE_THROWS_AS(proto::decode_request({}), proto::DecodeError);
  REQUIRE_THROWS_AS(proto::decode_request({1, 2, 3}), proto::DecodeError);
  std::vector<std::uint8_t> junk(64, 0xff);
  REQUIRE_THROWS_AS(proto::decode_node(junk), proto::DecodeError);
  auto good = proto::encode(sched::ResourceRequest{});
  good.resize(good.size() - 8);  // truncated
  REQUIRE_THROWS_AS(proto::decode_request(good), proto::DecodeError);
}

TEST_CASE("GPU telemetry and the new request fields survive the wire", "[proto]") {
  capnp::MallocMessageBuilder m;
  auto b = m.initRoot<iogrid::proto::GpuTelemetry>();
  iogrid::gpu::Telemetry t{3, 71.0, 412.5, 700.0, 93.0, 61.25, 1980, 2619};
  iogrid::proto::write(b, t);
  auto back = iogrid::proto::read(b.asReader());
  CHECK(back.index == 3);
  CHECK(back.power_w == Approx(412.5));
  CHECK(back.memory_used_gib == Approx(61.25));
  CHECK(back.memory_clock_mhz == 2619);
  iogrid::sched::ResourceRequest r;
  r.gpus = 500;
  r.max_price = 2.5;
  r.min_reputation = 0.8;
  r.min_gpu_tflops = 300;
  r.allow_unverified = true;
  r.preferred_regions = {"eu", "us"};
  r.reservation = 7;
  r.bundle = 1;
  r.priority = -2;
  auto rr = iogrid::proto::decode_request(iogrid::proto::encode(r));
  CHECK(rr.key() == r.key());
}
