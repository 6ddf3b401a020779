// IDX files (MNIST's format), plain or gzip, as read_idx reads a dataset a user points it at.
#include <zlib.h>

#include "fuzz.hpp"
#include "iogrid/data.hpp"

namespace {

std::string idx(std::vector<std::uint32_t> dims, std::uint8_t fill) {
  std::string out{'\0', '\0', '\x08', char(dims.size())};
  std::size_t n = 1;
  for (auto d : dims) {
    for (int s = 24; s >= 0; s -= 8) out.push_back(char(d >> s));
    n *= d;
  }
  out.append(n, char(fill));
  return out;
}

std::string gzip(const std::string& plain) {
  std::string out(compressBound(uLong(plain.size())) + 64, '\0');
  z_stream z{};
  deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(plain.data()));
  z.avail_in = uInt(plain.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = uInt(out.size());
  deflate(&z, Z_FINISH);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

std::vector<std::string> seeds() {
  auto images = idx({3, 4, 4}, 7), labels = idx({3}, 1);
  return {images, labels, gzip(images), gzip(labels)};
}

}  // namespace

IOGRID_FUZZ_TARGET(idx, seeds) {
  auto path = iogrid::fuzz::scratch_file(data, size);
  try {
    auto t = iogrid::data::read_idx(path);
    std::size_t n = 1;
    for (auto d : t.shape()) n *= std::size_t(d);
    if (n != t.numel()) __builtin_trap();
  } catch (const iogrid::Error&) {
  }
  return 0;
}
