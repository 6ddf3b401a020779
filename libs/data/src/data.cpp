#include "iogrid/data.hpp"

#include <zlib.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>

namespace iogrid::data {

namespace {

// The whole file, through zlib (which reads plain files as they are).
std::vector<std::uint8_t> read_all(const std::string& path) {
  if (!std::filesystem::exists(path)) throw Error("iogrid: dataset file " + path + " does not exist");
  std::unique_ptr<gzFile_s, int (*)(gzFile)> f(gzopen(path.c_str(), "rb"), gzclose);
  if (!f) throw Error("iogrid: cannot open dataset file " + path);
  std::vector<std::uint8_t> out;
  std::uint8_t buf[1 << 16];
  for (;;) {
    int n = gzread(f.get(), buf, sizeof buf);
    if (n < 0) {
      int err = 0;
      const char* msg = gzerror(f.get(), &err);
      throw Error("iogrid: dataset file " + path + " is corrupt (" + (msg ? msg : "read error") + ")");
    }
    if (n == 0) break;
    out.insert(out.end(), buf, buf + n);
  }
  return out;
}

std::uint32_t be32(const std::uint8_t* p) {
  return std::uint32_t(p[0]) << 24 | std::uint32_t(p[1]) << 16 | std::uint32_t(p[2]) << 8 | p[3];
}

}  // namespace

Tensor read_idx(const std::string& path) {
  auto bytes = read_all(path);
  if (bytes.size() < 4) throw Error("iogrid: " + path + " is not an IDX file (" + std::to_string(bytes.size()) + " bytes)");
  if (bytes[0] != 0 || bytes[1] != 0) throw Error("iogrid: " + path + " is not an IDX file (bad magic number)");
  if (bytes[2] != 0x08)
    throw Error("iogrid: " + path + " holds IDX type 0x" + std::to_string(bytes[2]) + "; only unsigned bytes (0x08) are read");
  const int dims = bytes[3];
  if (dims < 1 || dims > 4) throw Error("iogrid: " + path + " declares " + std::to_string(dims) + " dimensions");
  if (bytes.size() < 4 + 4 * std::size_t(dims)) throw Error("iogrid: " + path + " is truncated in its header");
  std::vector<std::int64_t> shape;
  std::size_t count = 1;
  for (int d = 0; d < dims; ++d) {
    shape.push_back(be32(&bytes[4 + 4 * std::size_t(d)]));
    if (__builtin_mul_overflow(count, std::size_t(shape.back()), &count) || count > bytes.size())
      throw Error("iogrid: " + path + " is truncated: its header promises more values than the file holds");
  }
  const std::size_t header = 4 + 4 * std::size_t(dims);
  if (bytes.size() - header != count)
    throw Error("iogrid: " + path + " is truncated or padded: its header promises " + std::to_string(count) +
                " values, the file holds " + std::to_string(bytes.size() - header));
  Tensor t(shape, DType::u8);
  if (count) std::memcpy(t.raw(), bytes.data() + header, count);
  return t;
}

Dataset read_idx_dataset(const std::string& images_path, const std::string& labels_path) {
  auto images = read_idx(images_path);
  auto labels = read_idx(labels_path);
  if (images.shape().size() != 3) throw Error("iogrid: " + images_path + " is not a set of images (N x rows x cols)");
  if (labels.shape().size() != 1) throw Error("iogrid: " + labels_path + " is not a list of labels");
  if (images.dim(0) != labels.dim(0))
    throw Error("iogrid: " + images_path + " has " + std::to_string(images.dim(0)) + " images but " + labels_path +
                " has " + std::to_string(labels.dim(0)) + " labels");
  Dataset d;
  d.images = images.reshape({images.dim(0), images.dim(1) * images.dim(2)});
  d.labels = Tensor({labels.dim(0)}, DType::i32);
  const auto* l = labels.data<std::uint8_t>();
  auto* out = d.labels.data<std::int32_t>();
  for (std::int64_t i = 0; i < labels.dim(0); ++i) out[i] = l[i];
  return d;
}

std::string fashion_mnist_dir() {
  if (const char* env = std::getenv("IOGRID_FASHION_MNIST"); env && *env) return env;
  return "/usr/share/datasets/fashion-mnist";
}

Dataset fashion_mnist(const std::string& split, const std::string& dir) {
  std::string prefix;
  if (split == "train") prefix = "train";
  else if (split == "test") prefix = "t10k";
  else throw Error("iogrid: Fashion-MNIST has the splits 'train' and 'test', not '" + split + "'");
  auto path = [&](const std::string& what) {
    auto p = std::filesystem::path(dir) / (prefix + "-" + what + "-idx" + (what == "images" ? "3" : "1") + "-ubyte");
    if (std::filesystem::exists(p.string() + ".gz")) return p.string() + ".gz";
    if (std::filesystem::exists(p)) return p.string();
    throw Error("iogrid: Fashion-MNIST is not in " + dir + " (" + p.filename().string() +
                "[.gz] missing): install Debian's dataset-fashion-mnist (scripts/setup does) or set IOGRID_FASHION_MNIST");
  };
  return read_idx_dataset(path("images"), path("labels"));
}

Dataset Dataset::slice(std::size_t begin, std::size_t end) const {
  end = std::min(end, size());
  begin = std::min(begin, end);
  const std::size_t f = features(), n = end - begin;
  Dataset d;
  d.images = Tensor({std::int64_t(n), std::int64_t(f)}, DType::u8);
  d.labels = Tensor({std::int64_t(n)}, DType::i32);
  if (n) {
    std::memcpy(d.images.raw(), images.data<std::uint8_t>() + begin * f, n * f);
    std::memcpy(d.labels.raw(), labels.data<std::int32_t>() + begin, n * 4);
  }
  return d;
}

Dataset Dataset::shard(int rank, int world) const {
  if (world < 1 || rank < 0 || rank >= world)
    throw Error("iogrid: shard " + std::to_string(rank) + " of " + std::to_string(world) + " does not exist");
  const std::size_t f = features(), n = size() > std::size_t(rank) ? (size() - std::size_t(rank) + std::size_t(world) - 1) / std::size_t(world) : 0;
  Dataset d;
  d.images = Tensor({std::int64_t(n), std::int64_t(f)}, DType::u8);
  d.labels = Tensor({std::int64_t(n)}, DType::i32);
  auto* img = d.images.data<std::uint8_t>();
  auto* lab = d.labels.data<std::int32_t>();
  for (std::size_t i = 0, src = std::size_t(rank); i < n; ++i, src += std::size_t(world)) {
    std::memcpy(img + i * f, images.data<std::uint8_t>() + src * f, f);
    lab[i] = labels.data<std::int32_t>()[src];
  }
  return d;
}

Dataset Dataset::from(std::vector<std::uint8_t> imgs, std::vector<std::int32_t> labs, std::size_t features) {
  if (features == 0 || imgs.size() != labs.size() * features)
    throw Error("iogrid: Dataset::from got " + std::to_string(imgs.size()) + " pixels for " + std::to_string(labs.size()) +
                " labels of " + std::to_string(features) + " features");
  Dataset d;
  d.images = Tensor::from(imgs, {std::int64_t(labs.size()), std::int64_t(features)});
  d.labels = Tensor::from(labs, {std::int64_t(labs.size())});
  return d;
}

}  // namespace iogrid::data
