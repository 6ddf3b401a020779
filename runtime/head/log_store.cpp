#include "runtime/head/log_store.hpp"

#include <fstream>
#include <sstream>

namespace iogrid::runtime::head {

void LogStore::append(const std::string& job, const std::string& text) {
  auto& buf = logs_[job];
  buf += text;
  if (buf.size() > kMaxPerJob) buf.erase(0, buf.size() - kMaxPerJob);
  if (!dir_.empty()) {
    std::filesystem::create_directories(dir_);
    std::ofstream out(dir_ / (job + ".log"), std::ios::app | std::ios::binary);
    out << text;
  }
}

void LogStore::append_submission(const std::string& submission, const std::string& text) {
  if (auto it = submissions_.find(submission); it != submissions_.end()) return append(it->second, text);
  auto& buf = early_[submission];
  buf += text;
  if (buf.size() > kMaxPerJob) buf.erase(0, buf.size() - kMaxPerJob);
}

void LogStore::bind_submission(const std::string& submission, const std::string& job) {
  submissions_[submission] = job;
  if (auto it = early_.find(submission); it != early_.end()) {
    append(job, it->second);
    early_.erase(it);
  }
}

std::optional<std::string> LogStore::get(const std::string& job) const {
  auto it = logs_.find(job);
  if (it == logs_.end()) return std::nullopt;
  return it->second;
}

void LogStore::restore(const std::string& job) {
  if (dir_.empty()) return;
  std::ifstream in(dir_ / (job + ".log"), std::ios::binary);
  if (!in) return;
  std::stringstream ss;
  ss << in.rdbuf();
  auto text = ss.str();
  logs_[job] = text.size() > kMaxPerJob ? text.substr(text.size() - kMaxPerJob) : text;
}

}  // namespace iogrid::runtime::head
