#include "runtime/cluster/wire_task.hpp"

#include <cstring>

#include "iogrid/errors.hpp"
#include "runtime/transport/data_plane.hpp"

namespace iogrid::runtime::cluster {

namespace {
kj::ArrayPtr<const kj::byte> bytes_of(const void* p, std::size_t n) {
  return kj::arrayPtr(static_cast<const kj::byte*>(p), n);
}
detail::MutableBufferPtr buffer_of(capnp::Data::Reader d) {
  auto b = detail::make_buffer(d.size());
  if (d.size()) std::memcpy(b->data(), d.begin(), d.size());
  return b;
}
}  // namespace

void write_location(proto::ObjectLocation::Builder b, const Location& l) {
  b.setHost(l.host);
  b.setPort(l.port);
  b.setKey(l.key);
  b.setSize(l.size);
  b.setNodeIndex(l.node);
}

Location read_location(proto::ObjectLocation::Reader r) {
  return Location{r.getHost(), r.getPort(), r.getKey(), r.getSize(), r.getNodeIndex()};
}

void write_task(proto::TaskSpec::Builder b, const detail::TaskSpec& spec, std::uint64_t task_id, const Locate& locate) {
  b.setTaskId(task_id);
  switch (spec.kind) {
    case detail::TaskKind::normal: b.setKind(proto::TaskKind::NORMAL); break;
    case detail::TaskKind::actor_create: b.setKind(proto::TaskKind::ACTOR_CREATE); break;
    case detail::TaskKind::actor_call: b.setKind(proto::TaskKind::ACTOR_CALL); break;
  }
  b.setFunction(spec.fn->name);
  b.setName(spec.name);
  b.setArgs(bytes_of(spec.args.data(), spec.args.size()));
  b.setAttempt(spec.attempt);
  auto n = static_cast<unsigned>(spec.deps.size());
  auto deps = b.initDepValues(n);
  std::vector<std::optional<Location>> where(n);
  bool any_remote = false;
  for (unsigned i = 0; i < n; ++i) {
    const auto& e = *spec.deps[i].get();
    if (!e.value && locate) where[i] = locate(e);
    if (where[i]) {
      any_remote = true;
      continue;
    }
    auto v = e.bytes();
    deps.set(i, bytes_of(v->data(), v->size()));
  }
  if (!any_remote) return;
  auto locs = b.initDepLocations(n);
  for (unsigned i = 0; i < n; ++i)
    if (where[i]) write_location(locs[i], *where[i]);
}

std::unique_ptr<RemoteSpec> read_task(proto::TaskSpec::Reader r) {
  auto s = std::make_unique<RemoteSpec>();
  s->task_id = r.getTaskId();
  switch (r.getKind()) {
    case proto::TaskKind::NORMAL: s->kind = detail::TaskKind::normal; break;
    case proto::TaskKind::ACTOR_CREATE: s->kind = detail::TaskKind::actor_create; break;
    case proto::TaskKind::ACTOR_CALL: s->kind = detail::TaskKind::actor_call; break;
  }
  std::string fn = r.getFunction();
  s->fn = detail::find_function(fn);
  if (!s->fn) s->missing_function = fn;
  s->name = r.getName();
  auto a = r.getArgs();
  s->args.assign(reinterpret_cast<const char*>(a.begin()), a.size());
  s->attempt = r.getAttempt();
  auto values = r.getDepValues();
  auto locs = r.getDepLocations();
  for (unsigned i = 0; i < values.size(); ++i) {
    auto h = detail::RefHandle::adopt(new detail::ObjectEntry(0));
    if (i < locs.size() && locs[i].getSize() > 0) {
      s->remote_deps.emplace_back(i, read_location(locs[i]));  // pulled on the worker thread, before running
    } else {
      auto d = values[i];
      auto size = d.size();
      h->complete_value(buffer_of(d), nullptr, size);
    }
    s->deps.push_back(std::move(h));
  }
  return s;
}

void fetch_remote_deps(RemoteSpec& spec) {
  if (spec.remote_deps.empty()) return;
  auto client = transport::process_data_client();
  if (!client) throw Error("iogrid: this process has no data plane client");
  for (auto& [i, loc] : spec.remote_deps) {
    auto buf = client->fetch(loc.host, loc.port, loc.key);
    auto size = buf->size();
    spec.deps[i]->complete_value(std::move(buf), nullptr, size);
  }
  spec.remote_deps.clear();
}

RemoteObject::~RemoteObject() = default;

detail::BufferPtr RemoteObject::fetch(std::uint64_t) {
  std::lock_guard<std::mutex> g(m_);
  if (cached_) return cached_;
  auto client = transport::process_data_client();
  if (!client) throw Error("iogrid: this process has no data plane client");
  cached_ = client->fetch(loc_.host, loc_.port, loc_.key);
  return cached_;
}

void RemoteObject::erase(std::uint64_t) {
  std::lock_guard<std::mutex> g(m_);
  cached_.reset();
  if (erased_) return;
  erased_ = true;
  if (auto client = transport::process_data_client()) client->erase_later(loc_.host, loc_.port, loc_.key);
}

void write_result(proto::TaskResult::Builder b, std::uint64_t task_id, const worker::Outcome& out,
                  const Location* location) {
  b.setTaskId(task_id);
  b.setOk(!out.failed);
  if (out.failed) b.setError(out.error);
  else if (location) write_location(b.initLocation(), *location);
  else if (out.value) b.setValue(bytes_of(out.value->data(), out.value->size()));
}

worker::Outcome read_result(proto::TaskResult::Reader r) {
  worker::Outcome out;
  out.failed = !r.getOk();
  if (out.failed) {
    out.error = r.getError();
  } else if (r.hasLocation() && r.getLocation().getSize() > 0) {
    auto loc = read_location(r.getLocation());
    out.location_size = loc.size;
    out.location = std::make_shared<RemoteObject>(std::move(loc));
  } else {
    out.value = buffer_of(r.getValue());
  }
  return out;
}

}  // namespace iogrid::runtime::cluster
