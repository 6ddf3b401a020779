// Collective groups: members (tasks, actors or drivers) that exchange buffers together, as in PyTorch's
// c10d. Every member joins with the group's name, its rank and the group's size; they meet through the head's
// key-value store, then talk to each other directly. Vectors and host tensors go through Gloo over TCP, or,
// when every member is a thread of one process (the actors of an embedded cluster), through the local backend
// that reads the other members' buffers in place; tensors on a GPU go through NCCL behind the same calls (its
// communicator is formed on the first GPU call, under the group's name + "/nccl", on the device of that tensor).
//
//   auto g = iogrid::collective::Group::join("grads-step-1", rank, world);
//   g.allreduce(gradients, iogrid::collective::ReduceOp::mean);   // every member gets the mean
//
// Rules: every member calls the same operations in the same order with the same sizes. Members must run at the
// same time: make them actors (or tasks in a gang's bundles); plain tasks of one shape may share a worker lease
// and run one after another, and then the first waits for the second until the timeout. A member that dies or
// stops calling makes the others' pending call throw iogrid::CollectiveError within `timeout`. A group name
// is used for one formation: a group re-formed after a failure takes a new name (e.g. with an attempt number).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "iogrid/errors.hpp"
#include "iogrid/tensor.hpp"

namespace iogrid::collective {

enum class ReduceOp { sum, mean, max };

struct GroupOptions {
  std::chrono::milliseconds timeout{30000};  // rendezvous, and each operation
  // The address this member listens on for its peers; empty: iogrid::current_host() (this machine's address as
  // the head sees it, 127.0.0.1 in an embedded cluster). Set it where that address is not one of this machine's
  // own (behind NAT) or peers should use another network.
  std::string host;
  // Host buffers: "auto" (or empty): the local backend when every member is in this process, else Gloo when
  // every member can dial every other, else "ring";
  // "gloo" always Gloo; "local" requires one process (a member elsewhere is an error); "ring" a ring whose
  // links are dialled directly or, between members that cannot dial each other (behind NATs), met through a
  // relay (the head's or an operator's), hole-punched where the NATs allow. GPU tensors go through NCCL, except
  // in a ring: NCCL needs direct links, so there they are copied to host memory and go round the ring.
  std::string host_backend = "auto";
};

class Group {
 public:
  static Group join(const std::string& name, int rank, int size, GroupOptions options = {});

  int rank() const;
  int size() const;
  // The host backend, "local" or "gloo", with "+nccl" once a GPU tensor went through the group.
  std::string backend() const;
  // How each member's link to the next was made, for the ring ("0>1 direct, 1>2 punched, 2>0 relayed"); "" else.
  std::string links() const;

  // Tensors (f32, i32 or i64; contiguous): host tensors through the host backend, GPU tensors through NCCL.
  void allreduce(Tensor& t, ReduceOp op = ReduceOp::sum);
  void broadcast(Tensor& t, int root);
  Tensor allgather(const Tensor& mine);                        // shape [size() * mine.numel()]
  Tensor reduce_scatter(const Tensor& all, ReduceOp op = ReduceOp::sum);  // shape [all.numel() / size()]

  template <class T>
  void allreduce(std::vector<T>& data, ReduceOp op = ReduceOp::sum) {
    raw_allreduce(data.data(), data.size(), type_of<T>(), op);
  }
  template <class T>
  void broadcast(std::vector<T>& data, int root) {
    raw_broadcast(data.data(), data.size(), type_of<T>(), root);
  }
  // Every member's `mine` (all the same length), in rank order.
  template <class T>
  std::vector<T> allgather(const std::vector<T>& mine) {
    std::vector<T> out(mine.size() * static_cast<std::size_t>(size()));
    raw_allgather(mine.data(), out.data(), mine.size(), type_of<T>());
    return out;
  }
  // `all` holds size() equal parts; returns this member's part of their reduction over members.
  template <class T>
  std::vector<T> reduce_scatter(const std::vector<T>& all, ReduceOp op = ReduceOp::sum) {
    const auto n = all.size() / static_cast<std::size_t>(size());
    if (n * static_cast<std::size_t>(size()) != all.size())
      throw CollectiveError("iogrid: reduce_scatter needs a multiple of the group size (" + std::to_string(size()) +
                            ") elements, got " + std::to_string(all.size()));
    std::vector<T> out(n);
    raw_reduce_scatter(all.data(), out.data(), n, type_of<T>(), op);
    return out;
  }
  void barrier();

 private:
  template <class T>
  static int type_of() {
    static_assert(std::is_same_v<T, float> || std::is_same_v<T, double> || std::is_same_v<T, std::int32_t> ||
                      std::is_same_v<T, std::int64_t>,
                  "iogrid collectives take float, double, int32_t or int64_t elements");
    if constexpr (std::is_same_v<T, float>) return 0;
    else if constexpr (std::is_same_v<T, double>) return 1;
    else if constexpr (std::is_same_v<T, std::int32_t>) return 2;
    else return 3;
  }
  void raw_allreduce(void* data, std::size_t n, int type, ReduceOp op);
  void raw_broadcast(void* data, std::size_t n, int type, int root);
  void raw_allgather(const void* in, void* out, std::size_t n, int type);
  void raw_reduce_scatter(const void* in, void* out, std::size_t n, int type, ReduceOp op);

  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace iogrid::collective
