// Frames, envelopes and the handshake's messages: bytes as a peer sends them on a control connection, read the
// way an endpoint reads them (FrameDecoder, the unauthenticated limit first, then the session's), every message
// walked whole (Cap'n Proto's bounds and traversal checks), and the messages iogrid converts to its own types
// (nodes, requests, telemetry, tasks, results, references, locations) converted.
#include <capnp/message.h>
#include <kj/exception.h>

#include "fuzz.hpp"
#include "iogrid/core/errors.hpp"
#include "runtime/cluster/wire_task.hpp"
#include "runtime/proto/convert.hpp"
#include "runtime/transport/frame.hpp"

namespace {

using namespace iogrid;
using runtime::transport::encode_frame;

void convert(proto::Envelope::Reader env) {
  using W = proto::Envelope::Which;
  (void)env.toString().flatten();  // every field, as a logger or debugger would read it
  switch (env.which()) {
    case W::HELLO: {
      auto h = env.getHello();
      (void)h.getRole();
      std::string name = h.getName();
      (void)h.getClientNonce().size();
      break;
    }
    case W::REGISTER_NODE: {
      auto r = env.getRegisterNode();
      if (r.hasInfo()) (void)proto::read(r.getInfo());
      break;
    }
    case W::LEASE_REQUEST:
      if (env.getLeaseRequest().hasRequest()) (void)proto::read(env.getLeaseRequest().getRequest());
      break;
    case W::HEARTBEAT:
      for (auto t : env.getHeartbeat().getTelemetry()) (void)proto::read(t);
      break;
    case W::TASKS:
      for (auto t : env.getTasks().getTasks()) (void)runtime::cluster::read_task(t);
      break;
    case W::RESULTS:
      for (auto r : env.getResults().getResults()) (void)runtime::cluster::read_result(r);
      break;
    default:
      break;
  }
}

std::string frame_of(const std::function<void(proto::Envelope::Builder)>& fill) {
  capnp::MallocMessageBuilder msg;
  fill(msg.initRoot<proto::Envelope>());
  return encode_frame(msg);
}

std::vector<std::string> seeds() {
  std::vector<std::string> out;
  out.push_back(frame_of([](proto::Envelope::Builder e) {
    auto h = e.initHello();
    h.setProtocolVersion(proto::PROTOCOL_VERSION);
    h.setRole(proto::Role::NODE);
    h.setName("node-a");
    h.setClientNonce(kj::heapArray<kj::byte>(32).asPtr());
  }));
  out.push_back(frame_of([](proto::Envelope::Builder e) {
    auto r = e.initRegisterNode();
    sched::Node n;
    n.name = "gpu-1";
    n.total.cpus = 8000;
    proto::write(r.initInfo(), n);
    r.setHost("10.0.0.2");
  }));
  out.push_back(frame_of([](proto::Envelope::Builder e) {
    sched::ResourceRequest q;
    q.cpus = 1000;
    proto::write(e.initLeaseRequest().initRequest(), q);
  }));
  out.push_back(frame_of([](proto::Envelope::Builder e) {
    auto t = e.initTasks().initTasks(1)[0];
    t.setTaskId(7);
    t.setFunction("fib");
    t.setName("fib");
    t.initDepValues(1).set(0, kj::heapArray<kj::byte>(16).asPtr());
    auto l = t.initDepLocations(1)[0];
    l.setHost("10.0.0.3");
    l.setPort(4000);
    l.setKey(9);
    l.setSize(0);
    auto ref = t.initRefs(1)[0];
    ref.setId(3);
    ref.setValue(kj::heapArray<kj::byte>(8).asPtr());
  }));
  out.push_back(frame_of([](proto::Envelope::Builder e) {
    auto r = e.initResults().initResults(2);
    r[0].setTaskId(7);
    r[0].setOk(true);
    r[0].setValue(kj::heapArray<kj::byte>(8).asPtr());
    r[1].setTaskId(8);
    r[1].setOk(false);
    r[1].setError("boom");
    r[1].setRootTask("fib");
    r[1].setThrough(3);
  }));
  out.push_back(frame_of([](proto::Envelope::Builder e) {
    auto h = e.initHeartbeat();
    h.setNodeIndex(1);
    h.initTelemetry(1)[0].setTemperatureC(60);
  }));
  // Two frames back to back (a decoder keeps what follows a frame).
  out.push_back(out[0] + out[5]);
  return out;
}

}  // namespace

// The first byte chooses the session's state (unauthenticated or not) and how the bytes arrive (chunk size).
IOGRID_FUZZ_TARGET(frame, seeds) {
  if (size < 1) return 0;
  runtime::transport::FrameDecoder dec;
  const bool authenticated = data[0] & 1;
  const std::size_t chunk = 1 + (data[0] >> 1);
  if (authenticated) dec.set_limit(1u << 20);
  ++data;
  --size;
  try {
    for (std::size_t off = 0; off < size; off += chunk) {
      dec.feed(reinterpret_cast<const char*>(data + off), std::min(chunk, size - off));
      while (auto f = dec.next()) {
        try {
          convert(f->envelope());
        } catch (const kj::Exception&) {   // a malformed message: the endpoint closes the connection
        } catch (const proto::DecodeError&) {
        } catch (const core::Error&) {
        }
      }
    }
  } catch (const runtime::transport::FrameError&) {
  }
  return 0;
}
