// IDX readers and datasets: round trips of plain and gzip files, every malformed file refused with its
// reason, Fashion-MNIST as Debian ships it, shards and slices.
#include <catch2/catch.hpp>
#include <zlib.h>

#include <filesystem>
#include <fstream>
#include <iogrid/data.hpp>

namespace fs = std::filesystem;
using iogrid::data::Dataset;

namespace {
std::vector<std::uint8_t> idx(std::uint8_t type, std::vector<std::uint32_t> dims, std::size_t values) {
  std::vector<std::uint8_t> b{0, 0, type, std::uint8_t(dims.size())};
  for (auto d : dims) {
    b.push_back(std::uint8_t(d >> 24));
    b.push_back(std::uint8_t(d >> 16));
    b.push_back(std::uint8_t(d >> 8));
    b.push_back(std::uint8_t(d));
  }
  for (std::size_t i = 0; i < values; ++i) b.push_back(std::uint8_t(i * 7));
  return b;
}
struct TempDir {
  fs::path path = fs::temp_directory_path() / ("iogrid-data-" + std::to_string(::getpid()));
  TempDir() { fs::create_directories(path); }
  ~TempDir() { fs::remove_all(path); }
  std::string write(const std::string& name, const std::vector<std::uint8_t>& bytes, bool gz = false) {
    auto p = (path / name).string();
    if (gz) {
      gzFile f = gzopen(p.c_str(), "wb");
      gzwrite(f, bytes.data(), unsigned(bytes.size()));
      gzclose(f);
    } else {
      std::ofstream(p, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
    }
    return p;
  }
};
}  // namespace

TEST_CASE("IDX files: plain and gzip read back with their shape, malformed files are refused with the reason", "[data]") {
  TempDir d;
  auto plain = iogrid::data::read_idx(d.write("a.idx", idx(0x08, {3, 2, 2}, 12)));
  CHECK(plain.shape() == std::vector<std::int64_t>{3, 2, 2});
  CHECK(plain.data<std::uint8_t>()[5] == 35);
  auto gz = iogrid::data::read_idx(d.write("a.idx.gz", idx(0x08, {3, 2, 2}, 12), true));
  CHECK(gz.to_vector<std::uint8_t>() == plain.to_vector<std::uint8_t>());

  CHECK_THROWS_WITH(iogrid::data::read_idx((d.path / "missing").string()), Catch::Contains("does not exist"));
  CHECK_THROWS_WITH(iogrid::data::read_idx(d.write("short", idx(0x08, {3, 2, 2}, 11))), Catch::Contains("truncated"));
  auto bad = idx(0x08, {2}, 2);
  bad[0] = 1;
  CHECK_THROWS_WITH(iogrid::data::read_idx(d.write("magic", bad)), Catch::Contains("bad magic"));
  CHECK_THROWS_WITH(iogrid::data::read_idx(d.write("float", idx(0x0d, {2}, 8))), Catch::Contains("only unsigned bytes"));
  auto gzbytes = d.write("cut.gz", idx(0x08, {100, 100}, 10000), true);
  fs::resize_file(gzbytes, fs::file_size(gzbytes) / 2);
  CHECK_THROWS_AS(iogrid::data::read_idx(gzbytes), iogrid::Error);

  auto ds = iogrid::data::read_idx_dataset(d.write("img", idx(0x08, {4, 2, 3}, 24)), d.write("lab", idx(0x08, {4}, 4)));
  CHECK(ds.size() == 4);
  CHECK(ds.features() == 6);
  CHECK(ds.labels.data<std::int32_t>()[3] == 21);
  CHECK_THROWS_WITH(iogrid::data::read_idx_dataset(d.write("img2", idx(0x08, {4, 2, 3}, 24)), d.write("lab2", idx(0x08, {5}, 5))),
                    Catch::Contains("4 images but"));
  CHECK_THROWS_WITH(iogrid::data::fashion_mnist("train", d.path.string()), Catch::Contains("dataset-fashion-mnist"));
  CHECK_THROWS_WITH(iogrid::data::fashion_mnist("validation"), Catch::Contains("'train' and 'test'"));
}

TEST_CASE("Fashion-MNIST as Debian ships it: 60,000 + 10,000 images of 28 x 28, ten balanced classes", "[data]") {
  auto train = iogrid::data::fashion_mnist("train");
  auto test = iogrid::data::fashion_mnist("test");
  CHECK(train.size() == 60000);
  CHECK(test.size() == 10000);
  CHECK(train.features() == 784);
  std::vector<int> per_class(10);
  for (std::size_t i = 0; i < test.size(); ++i) per_class.at(std::size_t(test.labels.data<std::int32_t>()[i]))++;
  for (int c : per_class) CHECK(c == 1000);
}

TEST_CASE("shards cover the data once and differ in size by at most one, slices copy a range", "[data]") {
  std::vector<std::uint8_t> px(10 * 3);
  std::vector<std::int32_t> lab(10);
  for (int i = 0; i < 10; ++i) lab[std::size_t(i)] = i, px[std::size_t(i) * 3] = std::uint8_t(i);
  auto d = Dataset::from(px, lab, 3);
  std::size_t total = 0;
  for (int r = 0; r < 3; ++r) {
    auto s = d.shard(r, 3);
    total += s.size();
    CHECK((s.size() == 3 || s.size() == 4));
    CHECK(s.labels.data<std::int32_t>()[1] == r + 3);
    CHECK(s.images.data<std::uint8_t>()[3] == r + 3);
  }
  CHECK(total == 10);
  CHECK(d.slice(2, 5).labels.to_vector<std::int32_t>() == std::vector<std::int32_t>{2, 3, 4});
  CHECK(d.slice(8, 100).size() == 2);
  CHECK_THROWS_AS(d.shard(3, 3), iogrid::Error);
  CHECK_THROWS_AS(Dataset::from({1, 2, 3}, {1}, 2), iogrid::Error);
}
