// How a node tells a worker process what it is: environment variables set when the node starts it.
// A program whose iogrid::init() finds kWorkerEndpointEnv runs as a worker and never returns to main().
#pragma once

#include <filesystem>
#include <string>

namespace iogrid::runtime::cluster {

inline constexpr const char* kWorkerEndpointEnv = "IOGRID_WORKER_NODE";   // 127.0.0.1:PORT of the node daemon
inline constexpr const char* kWorkerTokenEnv = "IOGRID_WORKER_TOKEN";     // the cluster token
inline constexpr const char* kWorkerJobEnv = "IOGRID_WORKER_JOB";         // the job it serves
inline constexpr const char* kWorkerHeadEnv = "IOGRID_WORKER_HEAD";       // HOST:PORT of the head (nested tasks)

// Where a worker writes a large result for its node to adopt (shared memory when the machine has it).
inline std::string object_file_prefix() {
  return std::filesystem::exists("/dev/shm") ? "/dev/shm/iogrid-obj-"
                                             : (std::filesystem::temp_directory_path() / "iogrid-obj-").string();
}

// Runs this process as a worker until its node or owner goes away; then exits the process.
[[noreturn]] void run_worker_process();

}  // namespace iogrid::runtime::cluster

namespace iogrid::runtime {
class SubmitterCore;
}

namespace iogrid::runtime::cluster {

// Inside a worker process: its own client of the head (the one nested tasks use, connected on first use), so
// user code in tasks and actors reaches the head's key-value store and cluster queries as a driver does.
// nullptr outside a worker process.
SubmitterCore* worker_process_client();

}  // namespace iogrid::runtime::cluster
