// Cap'n Proto conversions: the flat encodings of a resource request and a node (convert.hpp's decode_*), from
// arbitrary bytes; a decoded value must encode again.
#include "fuzz.hpp"
#include "runtime/proto/convert.hpp"

namespace {

using namespace iogrid;

std::vector<std::string> seeds() {
  auto str = [](const std::vector<std::uint8_t>& b) { return std::string(b.begin(), b.end()); };
  sched::ResourceRequest q;
  q.cpus = 2000;
  q.gpus = 500;
  q.gpu_models = {"H100", "A100"};
  q.labels = {{"region", "eu"}};
  q.custom = {{"ssd", 1000}};
  sched::Node n;
  n.name = "gpu-1";
  n.total.cpus = 16000;
  n.total.memory_mib = 65536;
  n.labels = {{"region", "us"}};
  n.price_per_gpu_hour = 1.25;
  return {"\x00" + str(proto::encode(q)), "\x01" + str(proto::encode(n))};
}

}  // namespace

// First byte: which decoder.
IOGRID_FUZZ_TARGET(convert, seeds) {
  if (size < 1) return 0;
  std::vector<std::uint8_t> bytes(data + 1, data + size);
  try {
    if (data[0] & 1) {
      auto n = proto::decode_node(bytes);
      (void)proto::encode(n);
      (void)n.describe();
    } else {
      auto q = proto::decode_request(bytes);
      (void)proto::encode(q);
    }
  } catch (const proto::DecodeError&) {
  }
  return 0;
}
