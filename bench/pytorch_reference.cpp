#include "bench/pytorch_reference.hpp"

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "bench/pytorch_script.hpp"

namespace iogrid::bench {

namespace fs = std::filesystem;

namespace {
void write(const fs::path& p, const void* data, std::size_t n) {
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f.write(static_cast<const char*>(data), std::streamsize(n));
  if (!f) throw std::runtime_error("cannot write " + p.string());
}

std::string quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}
}  // namespace

PytorchReference::PytorchReference(const data::Dataset& d) {
  dir_ = (fs::temp_directory_path() / ("iogrid-pytorch-" + std::to_string(::getpid()))).string();
  fs::create_directories(dir_);
  const std::string script = kPytorchScript;
  write(fs::path(dir_) / "fashion_mnist.py", script.data(), script.size());
  write(fs::path(dir_) / "images.u8", d.images.data<std::uint8_t>(), d.size() * d.features());
  write(fs::path(dir_) / "labels.i32", d.labels.data<std::int32_t>(), d.size() * 4);
}

PytorchReference::~PytorchReference() {
  std::error_code ec;
  fs::remove_all(dir_, ec);
}

std::optional<PytorchResult> PytorchReference::run(const PytorchRun& r, std::string* why) {
  std::vector<std::string> pythons;
  if (const char* p = std::getenv("IOGRID_PYTHON"); p && *p) pythons.push_back(p);
  pythons.push_back("python3");
  pythons.push_back("/usr/bin/python3");
  const fs::path d(dir_);
  std::string reasons;
  for (const auto& py : pythons) {
    const std::string cmd = quote(py) + " " + quote((d / "fashion_mnist.py").string()) + " --mode " + r.mode +
                            " --model " + r.model + " --device " + r.device + " --batch " + std::to_string(r.batch) +
                            " --epochs " + std::to_string(r.epochs) + " --threads " + std::to_string(r.threads) +
                            " --images " + quote((d / "images.u8").string()) + " --labels " +
                            quote((d / "labels.i32").string()) + " 2>" + quote((d / "stderr.txt").string());
    FILE* out = ::popen(cmd.c_str(), "r");
    if (!out) continue;
    std::string text;
    char buf[4096];
    while (std::size_t n = std::fread(buf, 1, sizeof buf, out)) text.append(buf, n);
    const int status = ::pclose(out);
    const int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    const auto line = text.substr(0, text.find('\n'));
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (code == 0 && j.is_object() && j.contains("rate")) {
      PytorchResult res;
      res.rate = j["rate"].get<double>();
      res.runs = j["runs"].get<std::vector<double>>();
      res.torch_version = j.value("torch", "");
      res.threads = j.value("threads", 0);
      return res;
    }
    std::string reason;
    if (j.is_object() && j.contains("error")) reason = j["error"].get<std::string>();
    else if (code == 127) reason = "not found";
    else {
      std::ifstream err(d / "stderr.txt");
      std::string last, l;
      while (std::getline(err, l))
        if (!l.empty()) last = l;
      reason = "exit status " + std::to_string(code) + (last.empty() ? "" : ": " + last);
    }
    reasons += (reasons.empty() ? "" : "; ") + py + ": " + reason;
  }
  if (why) *why = reasons;
  return std::nullopt;
}

}  // namespace iogrid::bench
