#include "bench/local_cluster.hpp"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace iogrid::bench {

namespace {
std::string self_exe() { return std::filesystem::read_symlink("/proc/self/exe").string(); }
std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}
}  // namespace

LocalDaemons::LocalDaemons(std::string work_dir) : dir_(std::move(work_dir)) {
  std::filesystem::create_directories(dir_);
  token_file_ = dir_ + "/token";
  std::random_device rd;
  {
    std::ofstream t(token_file_);
    t << "bench-" << rd() << rd() << rd() << rd() << "\n";
  }
  auto log = dir_ + "/head.log";
  spawn({"head", "--port", "0", "--token-file", token_file_, "--log-level", "warn"}, log);
  for (int i = 0; i < 200; ++i) {
    auto out = slurp(log);
    auto p = out.find("IOGRID_HEAD_PORT=");
    if (p != std::string::npos) {
      address_ = "127.0.0.1:" + std::to_string(std::stoi(out.substr(p + 17)));
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  throw std::runtime_error("the head did not start; see " + log);
}

LocalDaemons::~LocalDaemons() {
  for (auto it = pids_.rbegin(); it != pids_.rend(); ++it) ::kill(*it, SIGTERM);
  for (auto p : pids_) ::waitpid(p, nullptr, 0);
  std::error_code ec;
  if (!std::getenv("IOGRID_BENCH_KEEP")) std::filesystem::remove_all(dir_, ec);
}

pid_t LocalDaemons::spawn(const std::vector<std::string>& args, const std::string& log) {
  auto exe = self_exe();
  pid_t pid = ::fork();
  if (pid == 0) {
    std::vector<std::string> a{exe};
    a.insert(a.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& s : a) argv.push_back(s.data());
    argv.push_back(nullptr);
    if (auto* f = std::fopen(log.c_str(), "w")) {
      ::dup2(fileno(f), 1);
      ::dup2(fileno(f), 2);
    }
    ::execv(exe.c_str(), argv.data());
    ::_exit(127);
  }
  pids_.push_back(pid);
  return pid;
}

pid_t LocalDaemons::add_node(const std::string& name, double cpus) {
  return spawn({"node", "--address", address_, "--token-file", token_file_, "--name", name, "--num-cpus",
                std::to_string(cpus), "--work-dir", dir_ + "/" + name, "--log-level", "warn"},
               dir_ + "/" + name + ".log");
}

}  // namespace iogrid::bench
