#include "runtime/cluster/wire_task.hpp"

#include <cstring>

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

void write_task(proto::TaskSpec::Builder b, const detail::TaskSpec& spec, std::uint64_t task_id) {
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
  auto deps = b.initDepValues(static_cast<unsigned>(spec.deps.size()));
  for (unsigned i = 0; i < spec.deps.size(); ++i) {
    auto v = spec.deps[i]->bytes();
    deps.set(i, bytes_of(v->data(), v->size()));
  }
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
  for (auto d : r.getDepValues()) {
    auto h = detail::RefHandle::adopt(new detail::ObjectEntry(0));
    auto size = d.size();
    h->complete_value(buffer_of(d), nullptr, size);
    s->deps.push_back(std::move(h));
  }
  return s;
}

void write_result(proto::TaskResult::Builder b, std::uint64_t task_id, const worker::Outcome& out) {
  b.setTaskId(task_id);
  b.setOk(!out.failed);
  if (out.failed) b.setError(out.error);
  else if (out.value) b.setValue(bytes_of(out.value->data(), out.value->size()));
}

worker::Outcome read_result(proto::TaskResult::Reader r) {
  worker::Outcome out;
  out.failed = !r.getOk();
  if (out.failed) out.error = r.getError();
  else out.value = buffer_of(r.getValue());
  return out;
}

}  // namespace iogrid::runtime::cluster
