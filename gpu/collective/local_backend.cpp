// The local backend: members that are threads of one process (the actors of an embedded cluster, a test's
// threads) exchange host buffers through the memory they already share, instead of through Gloo's TCP sockets.
// Rules of one operation:
// - every member publishes its buffers and the operation's shape in its slot, then meets the others at a
//   barrier; members that called different operations or sizes all fail, naming both;
// - member r alone handles part r of the data: it reads that part of every member's buffer, reduces it in a
//   fixed order (rank 0, 1, ...) and writes the result into every member's buffer, so all end with the same bits;
// - a second barrier ends the operation: no member returns (and reuses its buffer) while another still reads it.
// Failure: a member whose backend is destroyed breaks the group, and the others' pending and later calls throw
// at once; a member that has not arrived when the timeout passes breaks it too.
// Barriers spin briefly (two busy workers meet within microseconds), then yield (0.5 ms at most), then sleep
// on a condition variable until the timeout, counted from the barrier's start.
// Formation: rank 0 registers the group's shared state in this process under a fresh number and publishes
// "<process token>:<number>" in the store; the others find it there, so a reused group name never meets an
// older formation.
#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include "gpu/collective/backend.hpp"

namespace iogrid::gpu::collective {

namespace {

// What a member brings to an operation.
struct Slot {
  const char* what = "";
  const void* in = nullptr;
  void* out = nullptr;
  std::size_t count = 0;
  DType type = DType::f32;
  ReduceOp op = ReduceOp::sum;
  int root = 0;
};

struct Shared {
  explicit Shared(int n) : size(n), slots(static_cast<std::size_t>(n)) {}
  const int size;
  std::vector<Slot> slots;                  // written by its member before a barrier, read by all after it
  std::atomic<std::uint64_t> arrivals{0};   // barrier arrivals since formation; phase k ends at k x size
  std::atomic<bool> broken{false};
  std::mutex m;
  std::condition_variable cv;
  std::string why;  // under m: the first failure

  void fail(const std::string& reason) {
    {
      std::lock_guard<std::mutex> g(m);
      if (!broken.load()) {
        why = reason;
        broken.store(true);
      }
    }
    cv.notify_all();
  }
};

// Formations waiting for their members, by number.
std::mutex g_forming_m;
std::map<std::uint64_t, std::shared_ptr<Shared>> g_forming;
std::atomic<std::uint64_t> g_next_formation{1};

// How long a barrier spins and yields before it sleeps on the condition variable: long enough for busy members
// to meet without a sleep, short enough that an oversubscribed machine does not turn it into seconds.
constexpr auto kSpinFor = std::chrono::microseconds(500);

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

// acc = acc (op) x over n elements.
template <class T>
void combine(T* acc, const T* x, std::size_t n, ReduceOp op) {
  if (op == ReduceOp::max) {
    for (std::size_t i = 0; i < n; ++i) acc[i] = std::max(acc[i], x[i]);
  } else {
    for (std::size_t i = 0; i < n; ++i) acc[i] += x[i];
  }
}

// out[0, n) = the reduction over members of ins[j][at, at + n), in rank order; mean divides by the count.
template <class T>
void reduce_range(const std::vector<const void*>& ins, std::size_t at, std::size_t n, ReduceOp op, T* out) {
  const auto* first = static_cast<const T*>(ins[0]) + at;
  if (static_cast<const void*>(out) != static_cast<const void*>(first)) std::memcpy(out, first, n * sizeof(T));
  for (std::size_t j = 1; j < ins.size(); ++j) combine(out, static_cast<const T*>(ins[j]) + at, n, op);
  if (op == ReduceOp::mean)
    for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<T>(out[i] / static_cast<T>(ins.size()));
}

// The allreduce share of one member: elements [lo, hi) of every buffer get the reduction, computed a tile at
// a time into `tile` (so each tile is read from every member once and written to every member once).
template <class T>
void allreduce_part(const std::vector<void*>& bufs, std::size_t lo, std::size_t hi, ReduceOp op) {
  constexpr std::size_t kTile = 4096;
  T tile[kTile];
  const std::vector<const void*> ins(bufs.begin(), bufs.end());
  for (std::size_t at = lo; at < hi; at += kTile) {
    const std::size_t n = std::min(kTile, hi - at);
    reduce_range<T>(ins, at, n, op, tile);
    for (void* b : bufs) std::memcpy(static_cast<T*>(b) + at, tile, n * sizeof(T));
  }
}

template <class F>
void by_type(DType t, F&& f) {
  switch (t) {
    case DType::f32: f(float{}); break;
    case DType::f64: f(double{}); break;
    case DType::i32: f(std::int32_t{}); break;
    case DType::i64: f(std::int64_t{}); break;
  }
}

class LocalBackend final : public Backend {
 public:
  LocalBackend(std::shared_ptr<Shared> shared, std::uint64_t formation, const std::string& prefix, int rank,
               const GroupOptions& o)
      : sh_(std::move(shared)), formation_(formation), prefix_(prefix), rank_(rank), timeout_(o.timeout) {}
  ~LocalBackend() override {
    sh_->fail("member rank " + std::to_string(rank_) + " left the group");
    std::lock_guard<std::mutex> g(g_forming_m);
    g_forming.erase(formation_);  // a formation some member never joined
  }

  int rank() const override { return rank_; }
  int size() const override { return sh_->size; }
  const char* name() const override { return "local"; }

  // Every member has arrived: the formation is complete (the constructor's caller waits for this).
  void meet() { arrive("rendezvous"); }

  void allreduce(void* data, std::size_t count, DType type, ReduceOp op) override {
    start({"allreduce", data, data, count, type, op, 0});
    std::vector<void*> bufs;
    for (const auto& s : sh_->slots) bufs.push_back(s.out);
    const auto range = part(count);
    by_type(type, [&](auto t) { allreduce_part<decltype(t)>(bufs, range.first, range.second, op); });
    arrive("allreduce");
  }
  void broadcast(void* data, std::size_t count, DType type, int root) override {
    if (root < 0 || root >= size())
      throw CollectiveError("broadcast in group " + prefix_ + ": root " + std::to_string(root) + " is not a member");
    start({"broadcast", data, data, count, type, ReduceOp::sum, root});
    const void* src = sh_->slots[static_cast<std::size_t>(root)].in;
    if (rank_ != root && count) std::memcpy(data, src, count * size_of(type));
    arrive("broadcast");
  }
  void allgather(const void* in, void* out, std::size_t count, DType type) override {
    start({"allgather", in, out, count, type, ReduceOp::sum, 0});
    const std::size_t n = count * size_of(type);
    for (std::size_t j = 0; j < sh_->slots.size() && n; ++j) std::memcpy(static_cast<char*>(out) + j * n, sh_->slots[j].in, n);
    arrive("allgather");
  }
  void reduce_scatter(const void* in, void* out, std::size_t count, DType type, ReduceOp op) override {
    start({"reduce_scatter", in, out, count, type, op, 0});
    std::vector<const void*> ins;
    for (const auto& s : sh_->slots) ins.push_back(s.in);
    const std::size_t at = static_cast<std::size_t>(rank_) * count;
    if (count) by_type(type, [&](auto t) { reduce_range<decltype(t)>(ins, at, count, op, static_cast<decltype(t)*>(out)); });
    arrive("reduce_scatter");
  }
  void barrier() override { arrive("barrier"); }

 private:
  // Publishes this member's slot, waits for the others and checks that they called the same operation.
  void start(const Slot& mine) {
    sh_->slots[static_cast<std::size_t>(rank_)] = mine;
    arrive(mine.what);
    for (int j = 0; j < size(); ++j) {
      const auto& s = sh_->slots[static_cast<std::size_t>(j)];
      if (std::strcmp(s.what, mine.what) != 0 || s.count != mine.count || s.type != mine.type || s.op != mine.op ||
          s.root != mine.root) {
        const std::string why = "members called different operations: rank " + std::to_string(rank_) + " " +
                                describe(mine) + ", rank " + std::to_string(j) + " " + describe(s);
        sh_->fail(why);
        throw error(mine.what, why);
      }
    }
  }
  static std::string describe(const Slot& s) {
    std::string d = std::string(s.what) + " of " + std::to_string(s.count) + " " + to_string(s.type);
    if (std::strcmp(s.what, "broadcast") == 0) return d + " from rank " + std::to_string(s.root);
    if (std::strcmp(s.what, "allreduce") == 0 || std::strcmp(s.what, "reduce_scatter") == 0) return d + " (" + to_string(s.op) + ")";
    return d;
  }
  // This member's share [lo, hi) of count elements (parts of whole cache lines where there is enough).
  std::pair<std::size_t, std::size_t> part(std::size_t count) const {
    const std::size_t n = std::size_t(size());
    std::size_t per = (count + n - 1) / n;
    per = (per + 15) / 16 * 16;
    const std::size_t lo = std::min(count, per * std::size_t(rank_));
    return {lo, std::min(count, lo + per)};
  }
  // The barrier: returns once every member has arrived at this member's current phase.
  void arrive(const char* what) {
    const std::uint64_t target = ++phase_ * std::uint64_t(size());
    if (sh_->arrivals.fetch_add(1) + 1 == target) {
      std::lock_guard<std::mutex> g(sh_->m);  // the last one wakes the sleepers
      sh_->cv.notify_all();
      return;
    }
    auto arrived = [&] { return sh_->arrivals.load() >= target; };
    // Spinning and yielding are bounded by time, not by a count: on a machine with more busy threads than
    // cores each yield can cost a whole time slice, and 18,000 of them once held a 500 ms timeout for 23 s.
    const auto start = std::chrono::steady_clock::now();
    for (int i = 0;; ++i) {
      if (arrived()) return;
      if (sh_->broken.load()) break;
      if (i < 2000) cpu_relax();
      else if (std::chrono::steady_clock::now() - start > kSpinFor) break;
      else std::this_thread::yield();
    }
    std::unique_lock<std::mutex> g(sh_->m);
    const auto deadline = start + timeout_;
    while (!arrived()) {
      if (sh_->broken.load()) {
        const std::string why = sh_->why;
        g.unlock();
        throw error(what, why);
      }
      if (sh_->cv.wait_until(g, deadline) == std::cv_status::timeout && !arrived() && !sh_->broken.load()) {
        g.unlock();
        const std::string why = "a member died or stopped answering (timed out after " + std::to_string(timeout_.count()) + " ms)";
        sh_->fail(why);
        throw error(what, why);
      }
    }
  }
  CollectiveError error(const char* what, const std::string& why) const {
    return CollectiveError(std::string(what) + " in group " + prefix_ + " (rank " + std::to_string(rank_) + " of " +
                           std::to_string(size()) + ") failed: " + why);
  }

  std::shared_ptr<Shared> sh_;
  std::uint64_t formation_;
  std::string prefix_;
  int rank_;
  std::chrono::milliseconds timeout_;
  std::uint64_t phase_ = 0;
};

}  // namespace

std::unique_ptr<Backend> make_local(Store& store, const std::string& prefix, int rank, int size, const GroupOptions& o) {
  const std::string who = "group " + prefix + " (rank " + std::to_string(rank) + " of " + std::to_string(size) + ")";
  check_member(prefix, rank, size);
  const std::string key = prefix + "/local";
  const std::string me = process_token();
  std::shared_ptr<Shared> shared;
  std::uint64_t formation = 0;
  if (rank == 0) {
    formation = g_next_formation.fetch_add(1);
    shared = std::make_shared<Shared>(size);
    {
      std::lock_guard<std::mutex> g(g_forming_m);
      g_forming[formation] = shared;
    }
    store.set(key, me + ":" + std::to_string(formation));
  } else {
    try {
      store.wait({key}, o.timeout);
    } catch (const CollectiveError& e) {
      throw CollectiveError(who + ": " + e.what());
    }
    const std::string v = store.get(key).value_or("");
    const auto colon = v.rfind(':');
    if (colon == std::string::npos || v.substr(0, colon) != me)
      throw CollectiveError(who + ": the local backend needs every member in one process, and rank 0 is in another");
    formation = std::stoull(v.substr(colon + 1));
    std::lock_guard<std::mutex> g(g_forming_m);
    auto it = g_forming.find(formation);
    if (it == g_forming.end()) throw CollectiveError(who + ": rank 0 left before this member joined");
    shared = it->second;
  }
  auto b = std::make_unique<LocalBackend>(shared, formation, prefix, rank, o);
  try {
    b->meet();
  } catch (const CollectiveError& e) {
    throw CollectiveError(who + ": not every member joined: " + e.what());
  }
  if (rank == 0) {  // everyone holds the shared state now
    std::lock_guard<std::mutex> g(g_forming_m);
    g_forming.erase(formation);
  }
  return b;
}

}  // namespace iogrid::gpu::collective
