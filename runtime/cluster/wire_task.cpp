#include "runtime/cluster/wire_task.hpp"

#include <algorithm>
#include <cstring>

#include "iogrid/core/errors.hpp"
#include "runtime/export_table.hpp"
#include "runtime/transport/auth.hpp"
#include "runtime/transport/data_plane.hpp"

namespace iogrid::runtime::cluster {

namespace {
kj::ArrayPtr<const kj::byte> bytes_of(const void* p, std::size_t n) {
  return kj::arrayPtr(static_cast<const kj::byte*>(p), n);
}
core::MutableBufferPtr buffer_of(capnp::Data::Reader d) {
  auto b = core::make_buffer(d.size());
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
  b.setRelay(l.relay);
}

Location read_location(proto::ObjectLocation::Reader r) {
  return Location{r.getHost(), r.getPort(), r.getKey(), r.getSize(), r.getNodeIndex(), r.getRelay()};
}

void write_task(proto::TaskSpec::Builder b, const core::TaskSpec& spec, std::uint64_t task_id, const Locate& locate) {
  b.setTaskId(task_id);
  switch (spec.kind) {
    case core::TaskKind::normal: b.setKind(proto::TaskKind::NORMAL); break;
    case core::TaskKind::actor_create: b.setKind(proto::TaskKind::ACTOR_CREATE); break;
    case core::TaskKind::actor_call: b.setKind(proto::TaskKind::ACTOR_CALL); break;
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
  auto refs = refs_of(spec);
  if (!refs.empty()) write_refs(b.initRefs(static_cast<unsigned>(refs.size())), refs, locate, false);
  if (!any_remote) return;
  auto locs = b.initDepLocations(n);
  for (unsigned i = 0; i < n; ++i)
    if (where[i]) write_location(locs[i], *where[i]);
}

std::unique_ptr<RemoteSpec> read_task(proto::TaskSpec::Reader r) {
  auto s = std::make_unique<RemoteSpec>();
  s->task_id = r.getTaskId();
  switch (r.getKind()) {
    case proto::TaskKind::NORMAL: s->kind = core::TaskKind::normal; break;
    case proto::TaskKind::ACTOR_CREATE: s->kind = core::TaskKind::actor_create; break;
    case proto::TaskKind::ACTOR_CALL: s->kind = core::TaskKind::actor_call; break;
  }
  std::string fn = r.getFunction();
  s->fn = core::find_function(fn);
  if (!s->fn) s->missing_function = fn;
  s->name = r.getName();
  auto a = r.getArgs();
  s->args.assign(reinterpret_cast<const char*>(a.begin()), a.size());
  s->attempt = r.getAttempt();
  auto values = r.getDepValues();
  auto locs = r.getDepLocations();
  for (unsigned i = 0; i < values.size(); ++i) {
    auto h = core::RefHandle::adopt(new core::ObjectEntry(0));
    if (i < locs.size() && locs[i].getSize() > 0) {
      s->remote_deps.emplace_back(i, read_location(locs[i]));  // pulled on the worker thread, before running
    } else {
      auto d = values[i];
      auto size = d.size();
      h->complete_value(buffer_of(d), nullptr, size);
    }
    s->deps.push_back(std::move(h));
  }
  if (r.hasRefs()) s->contained = read_refs(r.getRefs());  // listed while the task runs
  return s;
}

void fetch_remote_deps(RemoteSpec& spec, Location* failed) {
  if (spec.remote_deps.empty()) return;
  auto client = transport::process_data_client();
  if (!client) throw core::Error("iogrid: this process has no data plane client");
  for (auto& [i, loc] : spec.remote_deps) {
    *failed = loc;
    auto buf = client->fetch(loc.host, loc.port, loc.key, loc.size, loc.relay);
    auto size = buf->size();
    spec.deps[i]->complete_value(std::move(buf), nullptr, size);
  }
  spec.remote_deps.clear();
}

namespace {
std::mutex g_registry_mutex;
std::vector<std::weak_ptr<RemoteObject>> g_registry;

void register_object(const std::shared_ptr<RemoteObject>& o) {
  std::lock_guard<std::mutex> g(g_registry_mutex);
  if (g_registry.size() > 64 && g_registry.size() % 64 == 0)
    g_registry.erase(std::remove_if(g_registry.begin(), g_registry.end(), [](const auto& w) { return w.expired(); }),
                     g_registry.end());
  g_registry.push_back(o);
}
}  // namespace

RemoteObject::RemoteObject(Location l, bool borrowed)
    : loc_(std::move(l)), name_("node " + std::to_string(loc_.node)), erased_(borrowed) {}

void RemoteObject::disown() {
  std::lock_guard<std::mutex> g(m_);
  erased_ = true;
  lineage_ = nullptr;
}

RemoteObject::~RemoteObject() = default;

Location RemoteObject::location() const {
  std::lock_guard<std::mutex> g(m_);
  return loc_;
}

bool RemoteObject::rebuilding() const {
  std::lock_guard<std::mutex> g(m_);
  return rebuilding_;
}

void RemoteObject::set_lineage(Recompute r) {
  std::lock_guard<std::mutex> g(m_);
  lineage_ = std::move(r);
}

std::vector<std::shared_ptr<RemoteObject>> RemoteObject::on_node(std::uint32_t node) {
  std::vector<std::shared_ptr<RemoteObject>> out;
  std::lock_guard<std::mutex> g(g_registry_mutex);
  for (const auto& w : g_registry)
    if (auto o = w.lock(); o && o->location().node == node) out.push_back(o);
  return out;
}

std::shared_ptr<RemoteObject> RemoteObject::find(const Location& l) {
  std::lock_guard<std::mutex> g(g_registry_mutex);
  for (const auto& w : g_registry)
    if (auto o = w.lock()) {
      auto ol = o->location();
      if (ol.key == l.key && ol.port == l.port && ol.host == l.host) return o;
    }
  return nullptr;
}

std::shared_ptr<RemoteObject> make_remote_object(Location l, bool borrowed) {
  auto o = std::make_shared<RemoteObject>(std::move(l), borrowed);
  register_object(o);
  return o;
}

std::vector<core::ObjectEntry*> refs_of(const core::TaskSpec& spec) {
  std::vector<core::ObjectEntry*> out;
  std::vector<const std::vector<std::shared_ptr<void>>*> todo{&spec.contained};
  for (const auto& d : spec.deps)
    if (d->done()) todo.push_back(&d->contained);
  for (std::size_t i = 0; i < todo.size() && out.size() < 100000; ++i)
    for (const auto& token : *todo[i]) {
      auto* e = static_cast<core::ObjectEntry*>(token.get());
      if (!e || std::find(out.begin(), out.end(), e) != out.end()) continue;
      out.push_back(e);
      if (e->done()) todo.push_back(&e->contained);  // refs inside a ref's value
    }
  return out;
}

void write_refs(capnp::List<proto::RefInfo>::Builder list, const std::vector<core::ObjectEntry*>& refs,
                const Locate& locate, bool owned) {
  for (unsigned i = 0; i < refs.size(); ++i) {
    auto* e = refs[i];
    auto b = list[i];
    b.setId(e->id);
    b.setOwned(owned);
    if (!e->done()) {
      b.setError("iogrid: an ObjectRef inside a value was still pending when the value was sent to another process; "
                 "get() it first or pass it as a direct argument");
      continue;
    }
    if (e->state.load() == core::ObjectState::failed) {
      b.setError(e->error->message);
      continue;
    }
    auto* remote = dynamic_cast<RemoteObject*>(e->store.get());
    if (remote && !remote->rebuilding()) {
      write_location(b.initLocation(), remote->location());
      if (owned) remote->disown();  // the receiver frees it from now on
      continue;
    }
    if (!e->value && locate && !owned)
      if (auto where = locate(*e)) {
        write_location(b.initLocation(), *where);
        continue;
      }
    try {
      auto v = e->bytes();
      b.setValue(bytes_of(v->data(), v->size()));
    } catch (const std::exception& ex) {
      b.setError(ex.what());
    }
  }
}

std::vector<std::shared_ptr<void>> read_refs(capnp::List<proto::RefInfo>::Reader list) {
  std::vector<std::shared_ptr<void>> tokens;
  for (auto r : list) {
    auto h = core::RefHandle::adopt(new core::ObjectEntry(r.getId()));
    if (r.getError().size()) {
      h->complete_error(std::make_shared<const core::ErrorInfo>(
          core::ErrorInfo{core::ErrorKind::object_lost, "", "", std::string(r.getError())}));
    } else if (r.hasLocation() && r.getLocation().getSize() > 0) {
      auto loc = read_location(r.getLocation());
      auto size = loc.size;
      h->complete_value(nullptr, make_remote_object(std::move(loc), !r.getOwned()), size);
    } else {
      auto v = buffer_of(r.getValue());
      auto size = v->size();
      h->complete_value(std::move(v), nullptr, size);
    }
    tokens.push_back(process_export_table().export_ref(h.get()));
  }
  return tokens;
}

void RemoteObject::mark_lost(const std::string& why) {
  Recompute recompute;
  {
    std::lock_guard<std::mutex> g(m_);
    if (rebuilding_ || !failed_.empty() || cached_ || erased_) return;
    if (!lineage_) {
      failed_ = "iogrid: object lost with " + name_ + " (" + why + ") and it cannot be rebuilt (no lineage: it was not a task's result)";
    } else {
      rebuilding_ = true;
      recompute = lineage_;
    }
  }
  if (!recompute) {
    cv_.notify_all();
    std::vector<std::function<void()>> w;
    {
      std::lock_guard<std::mutex> g(m_);
      w.swap(waiting_);
    }
    for (auto& f : w) f();
    return;
  }
  std::weak_ptr<RemoteObject> self = shared_from_this();
  recompute([self](core::RefHandle result) {
    if (auto o = self.lock()) o->finish_rebuild(std::move(result));
  });
}

void RemoteObject::adopt(const std::shared_ptr<RemoteObject>& fresh) {
  // Take over the new copy (and its lineage); the fresh handle must not free it.
  std::lock_guard<std::mutex> g(fresh->m_);
  loc_ = fresh->loc_;
  name_ = fresh->name_;
  if (fresh->lineage_) lineage_ = fresh->lineage_;
  fresh->erased_ = true;
}

void RemoteObject::finish_rebuild(core::RefHandle result) {
  std::vector<std::function<void()>> w;
  {
    std::lock_guard<std::mutex> g(m_);
    rebuilding_ = false;
    if (result->state.load() == core::ObjectState::failed) {
      failed_ = "iogrid: rebuilding an object lost with " + name_ + " failed: " + result->error->message;
    } else if (auto* fresh = dynamic_cast<RemoteObject*>(result->store.get())) {
      adopt(std::static_pointer_cast<RemoteObject>(result->store));
      (void)fresh;
    } else {
      cached_ = result->value;  // came back small enough to travel inline
    }
    w.swap(waiting_);
  }
  cv_.notify_all();
  for (auto& f : w) f();
}

void RemoteObject::when_available(std::function<void()> fn) {
  {
    std::lock_guard<std::mutex> g(m_);
    if (rebuilding_) {
      waiting_.push_back(std::move(fn));
      return;
    }
  }
  fn();
}

core::BufferPtr RemoteObject::fetch(std::uint64_t) {
  auto client = transport::process_data_client();
  if (!client) throw core::Error("iogrid: this process has no data plane client");
  for (int attempt = 0;; ++attempt) {
    Location l;
    {
      std::unique_lock<std::mutex> g(m_);
      cv_.wait(g, [this] { return !rebuilding_; });
      if (cached_) return cached_;
      if (!failed_.empty()) throw core::Error(failed_);
      l = loc_;
    }
    try {
      auto buf = client->fetch(l.host, l.port, l.key, l.size, l.relay);
      std::lock_guard<std::mutex> g(m_);
      cached_ = buf;
      return buf;
    } catch (const core::Error& e) {
      if (attempt >= 3) throw;
      mark_lost(e.what());  // its node is gone (or lost it): rebuild, then try again
    }
  }
}

void RemoteObject::erase(std::uint64_t) {
  Location l;
  {
    std::lock_guard<std::mutex> g(m_);
    cached_.reset();
    lineage_ = nullptr;  // lets go of the inputs it pinned
    if (erased_) return;
    erased_ = true;
    l = loc_;
  }
  if (auto client = transport::process_data_client()) client->erase_later(l.host, l.port, l.key, l.relay);
}

void write_result(proto::TaskResult::Builder b, std::uint64_t task_id, const worker::Outcome& out,
                  const Location* location, const Location* lost_dep) {
  b.setTaskId(task_id);
  if (!out.failed && !out.contained.empty()) {
    std::vector<core::ObjectEntry*> refs;
    for (const auto& t : out.contained) refs.push_back(static_cast<core::ObjectEntry*>(t.get()));
    write_refs(b.initRefs(static_cast<unsigned>(refs.size())), refs, nullptr, true);
  }
  b.setOk(!out.failed);
  if (lost_dep) write_location(b.initLostDep(), *lost_dep);
  if (out.failed) {
    b.setError(out.error);
    if (out.root) {
      b.setRootTask(out.root->task_name);
      b.setRootNode(out.root->node);
      b.setRootMessage(out.root->message);
      b.setThrough(out.root->through);
    }
  } else if (location) write_location(b.initLocation(), *location);
  else if (out.value) b.setValue(bytes_of(out.value->data(), out.value->size()));
}

worker::Outcome read_result(proto::TaskResult::Reader r) {
  worker::Outcome out;
  out.failed = !r.getOk();
  if (r.hasRefs()) out.contained = read_refs(r.getRefs());
  if (out.failed) {
    out.error = r.getError();
    if (r.getThrough() > 0)
      out.root = std::make_shared<const core::ErrorInfo>(core::ErrorInfo{
          core::ErrorKind::task_failed, r.getRootTask(), r.getRootNode(), r.getRootMessage(), r.getThrough()});
    if (r.hasLostDep() && r.getLostDep().getSize() > 0) out.lost_dep = RemoteObject::find(read_location(r.getLostDep()));
  } else if (r.hasLocation() && r.getLocation().getSize() > 0) {
    auto loc = read_location(r.getLocation());
    out.location_size = loc.size;
    out.location = make_remote_object(std::move(loc));
  } else {
    out.value = buffer_of(r.getValue());
  }
  return out;
}

}  // namespace iogrid::runtime::cluster
