// The driver's runtime in cluster mode: the same TaskSubmitter, shape queues and actor records as the
// embedded runtime, with leases asked from a remote head and served by worker processes on remote nodes
// (RemoteLease). iogrid::init() starts it when given --address / IOGRID_ADDRESS.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "runtime/submitter_core.hpp"
#include "runtime/transport/frame.hpp"

namespace iogrid::runtime::cluster {

struct ClientOptions {
  std::string address;         // head HOST:PORT
  std::string token;           // the cluster token
  std::chrono::milliseconds lease_idle{100};
  std::chrono::milliseconds connect_timeout{10000};
  std::string parent_job;      // set in a worker process: it owns nested tasks of this job
  double verify_fraction = -1; // spot checks of tasks that set no share; -1: the head's --verify-fraction
  std::uint64_t verify_seed = 0;
};

std::unique_ptr<SubmitterCore> connect_cluster(ClientOptions opts);

// One status snapshot from a head, for the CLI (`iogrid status`): the raw reply as JSON.
std::string cluster_status_json(const std::string& address, const std::string& token);
// The output of a job's driver (when started by `iogrid job submit`) and workers, as the head keeps it.
std::string job_logs(const std::string& address, const std::string& token, const std::string& job_id);
// Runs `program` as a job's driver with its output streamed here and forwarded to the head; returns its exit code.
int submit_job(const std::string& address, const std::string& token, const std::string& token_file,
               std::vector<std::string> program);
// An operator command (runtime/head/reservations.hpp) for the CLI: the answer's JSON, or iogrid::Error.
std::string admin(const std::string& address, const std::string& token, const std::string& command,
                  const std::string& args, std::chrono::seconds timeout = std::chrono::seconds(10));
// Asks the head to stop a job; returns the head's answer (or throws iogrid::Error).
std::string stop_job(const std::string& address, const std::string& token, const std::string& job_id);

}  // namespace iogrid::runtime::cluster
