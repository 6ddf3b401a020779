// LeaseClient: whoever asked the head for a worker lease (a shape queue, an actor's mailbox).
// The head calls exactly one of granted()/failed() per request, from its own thread.
#pragma once

#include <memory>

#include "iogrid/core/object_entry.hpp"
#include "scheduler/resources.hpp"
#include "worker/work_source.hpp"

namespace iogrid::runtime {

class LeaseClient {
 public:
  virtual ~LeaseClient() = default;
  virtual void lease_granted() = 0;
  virtual void lease_failed(std::shared_ptr<const core::ErrorInfo> error) = 0;
};

// What travels to the head: the request, who asked, and what the granted worker will serve.
struct LeaseRequest {
  sched::ResourceRequest request;
  std::shared_ptr<LeaseClient> client;
  std::shared_ptr<worker::WorkSource> source;
};

}  // namespace iogrid::runtime
