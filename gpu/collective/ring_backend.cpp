// make_ring: iogrid's own backend for host memory over TCP, for members that cannot all dial each other (nodes
// behind NATs and firewalls). Each member keeps two links only: to the next rank (it makes that one) and from
// the previous rank (made by it). A link is dialled directly when the next member's published address answers
// within kDirectTimeout; otherwise both ends meet through GroupOptions::meet (the head's relay, where the two
// first try a hole punch: runtime/transport/punch.hpp). Each member publishes which path its link to the next
// took ("direct", "punched" or "relayed"): links() lists them all.
// Algorithms (all bandwidth-optimal rings): allreduce = reduce-scatter then allgather, each n-1 steps of one
// chunk to the next member while one arrives from the previous (both at once: poll, non-blocking sockets);
// reduce_scatter and allgather are the halves; broadcast passes 1 MiB segments along the ring from the root;
// barrier is an allreduce of one number. Every operation first sends the next member a header (operation,
// count, element type, root or reduction) and checks the previous member's: members calling different
// operations fail at once naming both. A member that dies or stops calling fails the others' operation within
// the group's timeout.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <sstream>
#include <thread>
#include <vector>

#include "gpu/collective/backend.hpp"

namespace iogrid::gpu::collective {

namespace {

using Clock = std::chrono::steady_clock;
constexpr std::chrono::milliseconds kDirectTimeout{1500};
constexpr std::size_t kSegment = 1u << 20;  // broadcast's pipelined segments

enum class Op : std::uint8_t { allreduce = 1, broadcast, allgather, reduce_scatter, barrier };
const char* op_name(std::uint8_t op) {
  switch (static_cast<Op>(op)) {
    case Op::allreduce: return "allreduce";
    case Op::broadcast: return "broadcast";
    case Op::allgather: return "allgather";
    case Op::reduce_scatter: return "reduce_scatter";
    case Op::barrier: return "barrier";
  }
  return "?";
}

struct Header {
  std::uint8_t op = 0, type = 0, extra = 0, pad = 0;  // extra: the reduction, or the root (broadcast)
  std::uint32_t root = 0;
  std::uint64_t count = 0;
};
static_assert(sizeof(Header) == 16);

template <class T>
void reduce_into(void* acc, const void* in, std::size_t n, ReduceOp op) {
  auto* a = static_cast<T*>(acc);
  const auto* b = static_cast<const T*>(in);
  if (op == ReduceOp::max)
    for (std::size_t i = 0; i < n; ++i) a[i] = std::max(a[i], b[i]);
  else
    for (std::size_t i = 0; i < n; ++i) a[i] = static_cast<T>(a[i] + b[i]);
}
void reduce_into(void* acc, const void* in, std::size_t n, DType t, ReduceOp op) {
  switch (t) {
    case DType::f32: return reduce_into<float>(acc, in, n, op);
    case DType::f64: return reduce_into<double>(acc, in, n, op);
    case DType::i32: return reduce_into<std::int32_t>(acc, in, n, op);
    case DType::i64: return reduce_into<std::int64_t>(acc, in, n, op);
  }
}
template <class T>
void divide(void* data, std::size_t n, int by) {
  auto* p = static_cast<T*>(data);
  for (std::size_t i = 0; i < n; ++i) p[i] = static_cast<T>(p[i] / static_cast<T>(by));
}
void divide(void* data, std::size_t n, DType t, int by) {
  switch (t) {
    case DType::f32: return divide<float>(data, n, by);
    case DType::f64: return divide<double>(data, n, by);
    case DType::i32: return divide<std::int32_t>(data, n, by);
    case DType::i64: return divide<std::int64_t>(data, n, by);
  }
}

// A listening socket on every interface, any port (its address is published as GroupOptions::host).
int listen_any(int* port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  socklen_t len = sizeof a;
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd, 16) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    if (fd >= 0) ::close(fd);
    return -1;
  }
  *port = ntohs(a.sin_port);
  return fd;
}

// Connects to host:port within `timeout`; -1 when it cannot.
int dial(const std::string& host, int port, std::chrono::milliseconds timeout) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found) != 0) return -1;
  int result = -1;
  for (auto* a = found; a && result < 0; a = a->ai_next) {
    const int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol);
    if (fd < 0) continue;
    int err = 0;
    if (::connect(fd, a->ai_addr, a->ai_addrlen) != 0) {
      err = errno;
      if (err == EINPROGRESS) {
        pollfd p{fd, POLLOUT, 0};
        if (::poll(&p, 1, static_cast<int>(timeout.count())) == 1) {
          socklen_t l = sizeof err;
          ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &l);
        } else {
          err = ETIMEDOUT;
        }
      }
    }
    if (err == 0) result = fd;
    else ::close(fd);
  }
  ::freeaddrinfo(found);
  return result;
}

class RingBackend final : public Backend {
 public:
  RingBackend(Store& store, const std::string& prefix, int rank, int size, const GroupOptions& o)
      : rank_(rank), size_(size), prefix_(prefix), timeout_(o.timeout) {
    check_member(prefix, rank, size);
    if (size_ > 1) connect(store, o);
  }
  ~RingBackend() override {
    for (int fd : {next_, prev_})
      if (fd >= 0) ::close(fd);
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  const char* name() const override { return "ring"; }
  std::string links() const override { return links_; }

  void allreduce(void* data, std::size_t count, DType type, ReduceOp op) override {
    if (size_ == 1) return;
    agree(Op::allreduce, count, type, static_cast<std::uint8_t>(op), 0);
    const auto chunks = split(count);
    reduce_scatter_ring(static_cast<char*>(data), chunks, type, op);
    allgather_ring(static_cast<char*>(data), chunks, type);
    if (op == ReduceOp::mean) divide(data, count, type, size_);
  }

  void reduce_scatter(const void* in, void* out, std::size_t count, DType type, ReduceOp op) override {
    const auto bytes = count * size_of(type);
    if (size_ == 1) {
      std::memcpy(out, in, bytes);
      return;
    }
    agree(Op::reduce_scatter, count, type, static_cast<std::uint8_t>(op), 0);
    std::vector<char> all(static_cast<const char*>(in), static_cast<const char*>(in) + bytes * size_);
    reduce_scatter_ring(all.data(), equal_chunks(count), type, op);
    std::memcpy(out, all.data() + bytes * rank_, bytes);
    if (op == ReduceOp::mean) divide(out, count, type, size_);
  }

  void allgather(const void* in, void* out, std::size_t count, DType type) override {
    const auto bytes = count * size_of(type);
    std::memcpy(static_cast<char*>(out) + bytes * rank_, in, bytes);
    if (size_ == 1) return;
    agree(Op::allgather, count, type, 0, 0);
    allgather_ring(static_cast<char*>(out), equal_chunks(count), type);
  }

  void broadcast(void* data, std::size_t count, DType type, int root) override {
    if (root < 0 || root >= size_)
      throw CollectiveError("broadcast in group " + prefix_ + ": from rank " + std::to_string(root) + ", outside 0.." + std::to_string(size_ - 1));
    if (size_ == 1) return;
    agree(Op::broadcast, count, type, 0, static_cast<std::uint32_t>(root));
    const auto bytes = count * size_of(type);
    const bool forward = (rank_ + 1) % size_ != root;
    auto* p = static_cast<char*>(data);
    for (std::size_t at = 0; at < bytes; at += kSegment) {
      const auto n = std::min(kSegment, bytes - at);
      if (rank_ != root) transfer(nullptr, 0, p + at, n, "broadcast");
      if (forward) transfer(p + at, n, nullptr, 0, "broadcast");
    }
  }

  void barrier() override {
    std::int64_t one = 1;
    if (size_ == 1) return;
    agree(Op::barrier, 1, DType::i64, 0, 0);
    const auto chunks = split(1);
    reduce_scatter_ring(reinterpret_cast<char*>(&one), chunks, DType::i64, ReduceOp::sum);
    allgather_ring(reinterpret_cast<char*>(&one), chunks, DType::i64);
    if (one != size_) throw CollectiveError("group " + prefix_ + ": barrier counted " + std::to_string(one) + " members");
  }

 private:
  struct Chunk {
    std::size_t at = 0, count = 0;  // in elements
  };
  // `count` elements in size_ chunks differing by at most one.
  std::vector<Chunk> split(std::size_t count) const {
    std::vector<Chunk> c(static_cast<std::size_t>(size_));
    std::size_t at = 0;
    for (int i = 0; i < size_; ++i) {
      c[static_cast<std::size_t>(i)] = {at, count / size_ + (static_cast<std::size_t>(i) < count % size_ ? 1 : 0)};
      at += c[static_cast<std::size_t>(i)].count;
    }
    return c;
  }
  std::vector<Chunk> equal_chunks(std::size_t count) const {
    std::vector<Chunk> c(static_cast<std::size_t>(size_));
    for (int i = 0; i < size_; ++i) c[static_cast<std::size_t>(i)] = {count * static_cast<std::size_t>(i), count};
    return c;
  }
  int mod(int x) const { return ((x % size_) + size_) % size_; }

  // n-1 steps; afterwards this member holds the full reduction of chunk `rank_`.
  void reduce_scatter_ring(char* data, const std::vector<Chunk>& chunks, DType type, ReduceOp op) {
    const auto es = size_of(type);
    std::size_t most = 0;
    for (const auto& c : chunks) most = std::max(most, c.count);
    std::vector<char> incoming(most * es);
    for (int s = 0; s < size_ - 1; ++s) {
      const auto& out = chunks[static_cast<std::size_t>(mod(rank_ - s - 1))];
      const auto& in = chunks[static_cast<std::size_t>(mod(rank_ - s - 2))];
      transfer(data + out.at * es, out.count * es, incoming.data(), in.count * es, "allreduce");
      reduce_into(data + in.at * es, incoming.data(), in.count, type, op == ReduceOp::max ? ReduceOp::max : ReduceOp::sum);
    }
  }
  // n-1 steps from "this member holds chunk rank_" to "every member holds every chunk".
  void allgather_ring(char* data, const std::vector<Chunk>& chunks, DType type) {
    const auto es = size_of(type);
    for (int s = 0; s < size_ - 1; ++s) {
      const auto& out = chunks[static_cast<std::size_t>(mod(rank_ - s))];
      const auto& in = chunks[static_cast<std::size_t>(mod(rank_ - s - 1))];
      transfer(data + out.at * es, out.count * es, data + in.at * es, in.count * es, "allgather");
    }
  }

  // Sends `out` to the next member while `in` arrives from the previous one, within the group's timeout.
  void transfer(const char* out, std::size_t out_n, char* in, std::size_t in_n, const char* what) {
    const auto until = Clock::now() + timeout_;
    std::size_t sent = 0, got = 0;
    while (sent < out_n || got < in_n) {
      pollfd p[2];
      nfds_t n = 0;
      int want_out = -1, want_in = -1;
      if (sent < out_n) want_out = static_cast<int>(n), p[n++] = {next_, POLLOUT, 0};
      if (got < in_n) want_in = static_cast<int>(n), p[n++] = {prev_, POLLIN, 0};
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now()).count();
      if (left <= 0) fail(what, "no progress within the group's timeout (a member stopped calling, or died)");
      const int r = ::poll(p, n, static_cast<int>(left));
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) fail(what, std::strerror(errno));
      if (want_out >= 0 && p[want_out].revents) {
        const ssize_t w = ::send(next_, out + sent, out_n - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0 && errno != EAGAIN && errno != EINTR) fail(what, std::string("the next member is gone: ") + std::strerror(errno));
        if (w > 0) sent += static_cast<std::size_t>(w);
      }
      if (want_in >= 0 && p[want_in].revents) {
        const ssize_t g = ::recv(prev_, in + got, in_n - got, MSG_DONTWAIT);
        if (g == 0) fail(what, "the previous member is gone (its connection ended)");
        if (g < 0 && errno != EAGAIN && errno != EINTR) fail(what, std::string("the previous member is gone: ") + std::strerror(errno));
        if (g > 0) got += static_cast<std::size_t>(g);
      }
    }
  }

  // Every member says what it is about to do; the previous member's call must be the same.
  void agree(Op op, std::size_t count, DType type, std::uint8_t extra, std::uint32_t root) {
    Header mine{static_cast<std::uint8_t>(op), static_cast<std::uint8_t>(type), extra, 0, root, count};
    Header theirs;
    transfer(reinterpret_cast<const char*>(&mine), sizeof mine, reinterpret_cast<char*>(&theirs), sizeof theirs, op_name(mine.op));
    if (std::memcmp(&mine, &theirs, sizeof mine) != 0) {
      std::ostringstream why;
      why << "members called different operations: rank " << rank_ << " " << op_name(mine.op) << " of " << count << " "
          << to_string(type) << ", rank " << mod(rank_ - 1) << " " << op_name(theirs.op) << " of " << theirs.count << " "
          << to_string(static_cast<DType>(theirs.type));
      fail(op_name(mine.op), why.str());
    }
  }

  [[noreturn]] void fail(const std::string& what, const std::string& why) const {
    throw CollectiveError(what + " in group " + prefix_ + " (rank " + std::to_string(rank_) + " of " + std::to_string(size_) + "): " + why);
  }

  std::string key(int r, const std::string& what) const { return prefix_ + "/ring/" + std::to_string(r) + "/" + what; }

  // Makes the link to the next member and takes the one from the previous member (see the file's comment).
  void connect(Store& store, const GroupOptions& o) {
    int port = 0;
    const int listener = listen_any(&port);
    if (listener < 0) fail("forming the ring", std::string("cannot listen: ") + std::strerror(errno));
    const int next = mod(rank_ + 1), prev = mod(rank_ - 1);
    try {
      store.set(key(rank_, "address"), o.host + " " + std::to_string(port));
      store.wait({key(next, "address")}, o.timeout);
    } catch (const CollectiveError& e) {
      ::close(listener);
      fail("forming the ring", e.what());
    }
    std::istringstream a(store.get(key(next, "address")).value_or(""));
    std::string host;
    int next_port = 0;
    a >> host >> next_port;
    // The link from the previous member arrives while this member makes its own (both at once: a thread).
    std::string prev_error;
    std::thread taker([&] {
      try {
        prev_ = take_from_prev(store, listener, prev, o);
      } catch (const std::exception& e) {
        prev_error = e.what();
      }
    });
    std::string path = "direct";
    next_ = dial(host, next_port, kDirectTimeout);
    if (next_ >= 0) {
      const std::string hello = prefix_ + "\n" + std::to_string(rank_) + "\n";
      const std::uint32_t n = static_cast<std::uint32_t>(hello.size());
      if (::send(next_, &n, sizeof n, MSG_NOSIGNAL) != sizeof n || ::send(next_, hello.data(), n, MSG_NOSIGNAL) != ssize_t(n)) {
        ::close(next_);
        next_ = -1;
      }
    }
    if (next_ < 0 && o.meet) {
      // The next member stops waiting for a direct connection and meets us, at our place.
      const std::string place = o.meet_place ? o.meet_place() : "";
      store.set(key(rank_, "via"), "meet " + place);
      next_ = o.meet(prefix_ + "/ring/" + std::to_string(rank_), place, &path);
    }
    taker.join();
    ::close(listener);
    if (next_ < 0)
      fail("forming the ring", "cannot reach rank " + std::to_string(next) + " at " + host + ":" + std::to_string(next_port) +
                                   (o.meet ? " directly nor through the relay" : " (and no relay to meet it through)"));
    if (prev_ < 0) fail("forming the ring", prev_error.empty() ? "the link from rank " + std::to_string(prev) + " never came" : prev_error);
    for (int fd : {next_, prev_}) {
      const int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
    }
    store.set(key(rank_, "path"), path);
    std::vector<std::string> paths;
    for (int r = 0; r < size_; ++r) paths.push_back(key(r, "path"));
    store.wait(paths, o.timeout);
    for (int r = 0; r < size_; ++r)
      links_ += (r ? ", " : "") + std::to_string(r) + ">" + std::to_string(mod(r + 1)) + " " + store.get(key(r, "path")).value_or("?");
  }

  // The previous member's link: accepted here (checked: it names this group and that rank), or met through
  // the relay once it says its direct dial failed.
  int take_from_prev(Store& store, int listener, int prev, const GroupOptions& o) {
    const auto until = Clock::now() + o.timeout;
    while (Clock::now() < until) {
      pollfd p{listener, POLLIN, 0};
      if (::poll(&p, 1, 50) == 1) {
        const int c = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
        if (c < 0) continue;
        std::uint32_t n = 0;
        std::string hello(256, '\0');
        pollfd q{c, POLLIN, 0};
        bool ok = ::poll(&q, 1, 2000) == 1 && ::recv(c, &n, sizeof n, MSG_WAITALL) == sizeof n && n <= hello.size() &&
                  ::recv(c, hello.data(), n, MSG_WAITALL) == ssize_t(n);
        hello.resize(ok ? n : 0);
        if (ok && hello == prefix_ + "\n" + std::to_string(prev) + "\n") return c;
        ::close(c);  // someone else, or a stale member of an earlier group of that name
        continue;
      }
      if (const auto via = store.get(key(prev, "via")).value_or(""); o.meet && via.rfind("meet ", 0) == 0) {
        std::string path;
        return o.meet(prefix_ + "/ring/" + std::to_string(prev), via.substr(5), &path);
      }
    }
    throw CollectiveError("the link from rank " + std::to_string(prev) + " did not come within the timeout");
  }

  int rank_, size_;
  std::string prefix_;
  std::chrono::milliseconds timeout_;
  int next_ = -1, prev_ = -1;
  std::string links_;
};

}  // namespace

std::unique_ptr<Backend> make_ring(Store& store, const std::string& prefix, int rank, int size, const GroupOptions& o) {
  return std::make_unique<RingBackend>(store, prefix, rank, size, o);
}

bool members_dial_each_other(Store& store, const std::string& prefix, int rank, int size, const GroupOptions& o) {
  // The listener is never accepted from: the kernel completes up to its backlog of handshakes by itself.
  int port = 0;
  const int listener = listen_any(&port);
  if (listener < 0) return false;
  auto key = [&](int r, const char* what) { return prefix + "/probe/" + std::to_string(r) + "/" + what; };
  bool all = true;
  try {
    store.set(key(rank, "address"), o.host + " " + std::to_string(port));
    std::vector<std::string> addresses, verdicts;
    for (int r = 0; r < size; ++r) addresses.push_back(key(r, "address")), verdicts.push_back(key(r, "verdict"));
    store.wait(addresses, o.timeout);
    // Every other member at once, each within kDirectTimeout.
    std::vector<std::thread> probes;
    std::vector<char> answered(static_cast<std::size_t>(size), 1);
    for (int r = 0; r < size; ++r) {
      if (r == rank) continue;
      std::istringstream a(store.get(key(r, "address")).value_or(""));
      std::string host;
      int p = 0;
      a >> host >> p;
      probes.emplace_back([&answered, r, host, p] {
        const int fd = dial(host, p, kDirectTimeout);
        answered[static_cast<std::size_t>(r)] = fd >= 0;
        if (fd >= 0) ::close(fd);
      });
    }
    for (auto& t : probes) t.join();
    const bool mine = std::all_of(answered.begin(), answered.end(), [](char c) { return c != 0; });
    store.set(key(rank, "verdict"), mine ? "1" : "0");
    store.wait(verdicts, o.timeout);  // the listener stays open until every member has probed it
    for (const auto& v : verdicts) all = all && store.get(v).value_or("0") == "1";
  } catch (...) {
    ::close(listener);
    throw;
  }
  ::close(listener);
  return all;
}

}  // namespace iogrid::gpu::collective
