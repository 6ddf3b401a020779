#include "runtime/proto/convert.hpp"

#include <capnp/message.h>
#include <capnp/serialize.h>
#include <kj/exception.h>

#include <cstring>

namespace iogrid::proto {

namespace {
// Custom resources as a list of (name, milli) pairs.
template <class Builder>
void write_quantities(Builder list, const std::map<std::string, sched::Milli>& m) {
  unsigned i = 0;
  for (const auto& [k, v] : m) {
    list[i].setName(k);
    list[i].setMilli(v);
    ++i;
  }
}

void write_res(NodeResources::Builder b, const sched::NodeResources& r) {
  b.setCpusMilli(r.cpus);
  b.setMemoryMib(r.memory_mib);
  write_quantities(b.initCustom(static_cast<unsigned>(r.custom.size())), r.custom);
}
sched::NodeResources read_res(NodeResources::Reader r) {
  sched::NodeResources out;
  out.cpus = r.getCpusMilli();
  out.memory_mib = r.getMemoryMib();
  for (auto q : r.getCustom()) out.custom[q.getName()] = q.getMilli();
  return out;
}
template <class Builder>
void write_labels(Builder b, const std::map<std::string, std::string>& m) {
  unsigned i = 0;
  for (const auto& [k, v] : m) {
    b[i].setKey(k);
    b[i].setValue(v);
    ++i;
  }
}

template <class T>
std::vector<std::uint8_t> flat(capnp::MallocMessageBuilder& msg) {
  auto words = capnp::messageToFlatArray(msg);
  auto bytes = words.asBytes();
  return std::vector<std::uint8_t>(bytes.begin(), bytes.end());
}

template <class Root, class Fn>
auto with_reader(const std::vector<std::uint8_t>& bytes, Fn fn) {
  if (bytes.size() % sizeof(capnp::word) != 0 || bytes.empty())
    throw DecodeError("iogrid: malformed message: size " + std::to_string(bytes.size()) + " is not a whole number of words");
  std::vector<capnp::word> words(bytes.size() / sizeof(capnp::word));
  std::memcpy(words.data(), bytes.data(), bytes.size());
  try {
    capnp::ReaderOptions opts;
    opts.traversalLimitInWords = 1 << 20;
    capnp::FlatArrayMessageReader reader(kj::arrayPtr(words.data(), words.size()), opts);
    return fn(reader.getRoot<Root>());
  } catch (const kj::Exception& e) {
    throw DecodeError(std::string("iogrid: malformed message: ") + e.getDescription().cStr());
  }
}
}  // namespace

void write(GpuTelemetry::Builder b, const gpu::Telemetry& t) {
  b.setIndex(static_cast<std::uint32_t>(t.index));
  b.setTemperatureC(float(t.temperature_c));
  b.setPowerW(float(t.power_w));
  b.setPowerLimitW(float(t.power_limit_w));
  b.setUtilizationPct(float(t.utilization_pct));
  b.setMemoryUsedGib(float(t.memory_used_gib));
  b.setSmClockMhz(static_cast<std::uint32_t>(t.sm_clock_mhz));
  b.setMemoryClockMhz(static_cast<std::uint32_t>(t.memory_clock_mhz));
}

gpu::Telemetry read(GpuTelemetry::Reader r) {
  return gpu::Telemetry{static_cast<int>(r.getIndex()), r.getTemperatureC(), r.getPowerW(), r.getPowerLimitW(),
                        r.getUtilizationPct(), r.getMemoryUsedGib(), static_cast<int>(r.getSmClockMhz()),
                        static_cast<int>(r.getMemoryClockMhz())};
}

void write(ResourceRequest::Builder b, const sched::ResourceRequest& r) {
  b.setCpusMilli(r.cpus);
  b.setMemoryMib(r.memory_mib);
  b.setGpusMilli(r.gpus);
  auto models = b.initGpuModels(static_cast<unsigned>(r.gpu_models.size()));
  for (unsigned i = 0; i < r.gpu_models.size(); ++i) models.set(i, r.gpu_models[i]);
  b.setMinGpuMemoryMib(r.min_gpu_memory_mib);
  b.setMinComputeCapability(r.min_compute_capability);
  write_quantities(b.initCustom(static_cast<unsigned>(r.custom.size())), r.custom);
  write_labels(b.initLabels(static_cast<unsigned>(r.labels.size())), r.labels);
  b.setNode(r.node);
  b.setMinGpuTflops(r.min_gpu_tflops);
  b.setAllowUnverified(r.allow_unverified);
  b.setMaxPrice(r.max_price);
  b.setMinReputation(r.min_reputation);
  auto regions = b.initPreferredRegions(static_cast<unsigned>(r.preferred_regions.size()));
  for (unsigned i = 0; i < r.preferred_regions.size(); ++i) regions.set(i, r.preferred_regions[i]);
  b.setReservation(r.reservation);
  b.setPriority(r.priority);
  b.setBundle(r.bundle);
  b.setTier(static_cast<std::uint8_t>(r.tier));
  auto avoid = b.initAvoidNodes(static_cast<unsigned>(r.avoid_nodes.size()));
  for (unsigned i = 0; i < r.avoid_nodes.size(); ++i) avoid.set(i, r.avoid_nodes[i]);
}

sched::ResourceRequest read(ResourceRequest::Reader r) {
  sched::ResourceRequest out;
  out.cpus = r.getCpusMilli();
  out.memory_mib = r.getMemoryMib();
  out.gpus = r.getGpusMilli();
  for (auto m : r.getGpuModels()) out.gpu_models.emplace_back(m);
  out.min_gpu_memory_mib = r.getMinGpuMemoryMib();
  out.min_compute_capability = r.getMinComputeCapability();
  for (auto q : r.getCustom()) out.custom[q.getName()] = q.getMilli();
  for (auto kv : r.getLabels()) out.labels[kv.getKey()] = kv.getValue();
  out.node = r.getNode();
  out.min_gpu_tflops = r.getMinGpuTflops();
  out.allow_unverified = r.getAllowUnverified();
  out.max_price = r.getMaxPrice();
  out.min_reputation = r.getMinReputation();
  for (auto x : r.getPreferredRegions()) out.preferred_regions.emplace_back(x);
  out.reservation = r.getReservation();
  out.priority = r.getPriority();
  out.bundle = r.getBundle();
  for (auto x : r.getAvoidNodes()) out.avoid_nodes.emplace_back(x);
  out.tier = r.getTier() <= 2 ? static_cast<sched::Tier>(r.getTier()) : sched::Tier::standard;
  return out;
}

void write(NodeInfo::Builder b, const sched::Node& n) {
  b.setIndex(n.index);
  b.setName(n.name);
  write_res(b.initTotal(), n.total);
  write_res(b.initAvailable(), n.available);
  auto gs = b.initGpus(static_cast<unsigned>(n.gpus.size()));
  for (unsigned i = 0; i < n.gpus.size(); ++i) {
    const auto& g = n.gpus[i];
    gs[i].setModel(g.model);
    gs[i].setMemoryMib(g.memory_mib);
    gs[i].setComputeCapability(g.compute_capability);
    gs[i].setTflops(g.tflops);
    gs[i].setVerified(g.verified);
    gs[i].setFreeMilli(g.free);
  }
  write_labels(b.initLabels(static_cast<unsigned>(n.labels.size())), n.labels);
  b.setPricePerGpuHour(n.price_per_gpu_hour);
  b.setReputation(n.reputation);
  b.setAlive(n.alive);
}

sched::Node read(NodeInfo::Reader r) {
  sched::Node n;
  n.index = r.getIndex();
  n.name = r.getName();
  n.total = read_res(r.getTotal());
  n.available = read_res(r.getAvailable());
  for (auto g : r.getGpus())
    n.gpus.push_back(sched::Gpu{g.getModel(), g.getMemoryMib(), g.getComputeCapability(), g.getTflops(), g.getVerified(),
                                g.getFreeMilli()});
  for (auto kv : r.getLabels()) n.labels[kv.getKey()] = kv.getValue();
  n.price_per_gpu_hour = r.getPricePerGpuHour();
  n.reputation = r.getReputation();
  n.alive = r.getAlive();
  return n;
}

void write(Allocation::Builder b, const sched::Allocation& a) {
  b.setNodeIndex(a.node);
  b.setCpusMilli(a.cpus);
  b.setMemoryMib(a.memory_mib);
  write_quantities(b.initCustom(static_cast<unsigned>(a.custom.size())), a.custom);
  auto dev = b.initGpuDevices(static_cast<unsigned>(a.gpus.size()));
  auto milli = b.initGpuMilli(static_cast<unsigned>(a.gpus.size()));
  for (unsigned j = 0; j < a.gpus.size(); ++j) {
    dev.set(j, a.gpus[j].first);
    milli.set(j, a.gpus[j].second);
  }
}

sched::Allocation read(Allocation::Reader r) {
  sched::Allocation a;
  a.node = r.getNodeIndex();
  a.cpus = r.getCpusMilli();
  a.memory_mib = r.getMemoryMib();
  for (auto q : r.getCustom()) a.custom[q.getName()] = q.getMilli();
  auto dev = r.getGpuDevices();
  auto milli = r.getGpuMilli();
  if (dev.size() != milli.size()) throw DecodeError("iogrid: malformed allocation: GPU lists differ in length");
  for (unsigned j = 0; j < dev.size(); ++j) a.gpus.emplace_back(dev[j], milli[j]);
  return a;
}

std::vector<std::uint8_t> encode(const sched::ResourceRequest& r) {
  capnp::MallocMessageBuilder msg;
  write(msg.initRoot<ResourceRequest>(), r);
  return flat<ResourceRequest>(msg);
}
sched::ResourceRequest decode_request(const std::vector<std::uint8_t>& bytes) {
  return with_reader<ResourceRequest>(bytes, [](ResourceRequest::Reader r) { return read(r); });
}
std::vector<std::uint8_t> encode(const sched::Node& n) {
  capnp::MallocMessageBuilder msg;
  write(msg.initRoot<NodeInfo>(), n);
  return flat<NodeInfo>(msg);
}
sched::Node decode_node(const std::vector<std::uint8_t>& bytes) {
  return with_reader<NodeInfo>(bytes, [](NodeInfo::Reader r) { return read(r); });
}

}  // namespace iogrid::proto
