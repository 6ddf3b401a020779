// A job's executable in chunks (runtime/cluster/code_transfer.hpp): what the holder reads, what the receiver
// assembles and checks, and every way a transfer can go wrong (each leaves no file behind).
#include <catch2/catch.hpp>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <string>

#include "runtime/cluster/code_transfer.hpp"
#include "runtime/transport/auth.hpp"

using namespace iogrid::runtime;
using cluster::CodeDownload;
using cluster::kCodeChunkBytes;
namespace fs = std::filesystem;

namespace {

struct TempDir {
  fs::path path = fs::temp_directory_path() / ("iogrid-code-" + std::to_string(::getpid()) + "-" +
                                               std::to_string(std::random_device{}()));
  TempDir() { fs::create_directories(path); }
  ~TempDir() { fs::remove_all(path); }
};

std::string random_bytes(std::size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

fs::path write_file(const fs::path& dir, const std::string& name, const std::string& bytes) {
  auto p = dir / name;
  std::ofstream(p, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  return p;
}

std::string read_all(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Serves every request the download makes from `source` until it is over; returns the last step.
CodeDownload::Step serve(CodeDownload& d, const fs::path& source, int* requests = nullptr) {
  for (;;) {
    auto offsets = d.next_requests();
    REQUIRE(!offsets.empty());
    CHECK(static_cast<int>(offsets.size()) <= cluster::kCodeWindow);
    for (auto off : offsets) {
      if (requests) ++*requests;
      std::uint64_t total = 0;
      auto chunk = cluster::read_code_chunk(source, off, &total);
      REQUIRE(chunk);
      auto step = d.add(off, total, *chunk);
      if (step != CodeDownload::Step::more) return step;
    }
  }
}

}  // namespace

TEST_CASE("a holder reads its executable a chunk at a time, the last one short, nothing past the end", "[code]") {
  TempDir t;
  const auto bytes = random_bytes(2 * kCodeChunkBytes + 123, 1);
  auto file = write_file(t.path, "exe", bytes);
  std::uint64_t total = 0;
  auto first = cluster::read_code_chunk(file, 0, &total);
  REQUIRE(first);
  CHECK(total == bytes.size());
  CHECK(*first == bytes.substr(0, kCodeChunkBytes));
  auto last = cluster::read_code_chunk(file, 2 * kCodeChunkBytes, &total);
  REQUIRE(last);
  CHECK(*last == bytes.substr(2 * kCodeChunkBytes));
  CHECK_FALSE(cluster::read_code_chunk(file, bytes.size(), &total));
  CHECK_FALSE(cluster::read_code_chunk(t.path / "missing", 0, &total));
}

TEST_CASE("chunks asked for a few at a time assemble the executable, checked against its hash", "[code]") {
  TempDir t;
  for (std::size_t size : {std::size_t(1), std::size_t(kCodeChunkBytes), std::size_t(5 * kCodeChunkBytes + 7)}) {
    const auto bytes = random_bytes(size, static_cast<unsigned>(size));
    auto source = write_file(t.path, "exe", bytes);
    const auto hash = transport::sha256_hex(bytes);
    const bool size_known = size > 1;  // the head knows it (RegisterJob.codeSize); a node learns it from chunk one
    CodeDownload d(t.path / "store", hash, size_known ? size : 0);
    int requests = 0;
    REQUIRE(serve(d, source, &requests) == CodeDownload::Step::done);
    CHECK(requests == static_cast<int>((size + kCodeChunkBytes - 1) / kCodeChunkBytes));
    CHECK(read_all(t.path / "store" / hash) == bytes);
    CHECK_FALSE(fs::exists(t.path / "store" / (hash + ".part")));
    CHECK(d.received() == size);
    CHECK(d.next_requests().empty());
  }
}

TEST_CASE("an unknown size is asked for one chunk first, then a window of them", "[code]") {
  TempDir t;
  const auto bytes = random_bytes(6 * kCodeChunkBytes, 2);
  auto source = write_file(t.path, "exe", bytes);
  CodeDownload d(t.path, transport::sha256_hex(bytes));
  auto first = d.next_requests();
  REQUIRE(first == std::vector<std::uint64_t>{0});
  CHECK(d.next_requests().empty());  // nothing more until the size is known
  std::uint64_t total = 0;
  REQUIRE(d.add(0, bytes.size(), *cluster::read_code_chunk(source, 0, &total)) == CodeDownload::Step::more);
  auto window = d.next_requests();
  REQUIRE(window.size() == static_cast<std::size_t>(cluster::kCodeWindow));
  CHECK(window.front() == kCodeChunkBytes);
}

TEST_CASE("a transfer that goes wrong fails with its reason and leaves no file", "[code]") {
  TempDir t;
  const auto bytes = random_bytes(3 * kCodeChunkBytes + 5, 3);
  auto source = write_file(t.path, "exe", bytes);
  const auto hash = transport::sha256_hex(bytes);
  auto store = t.path / "store";
  auto nothing_left = [&] { return !fs::exists(store / hash) && !fs::exists(store / (hash + ".part")); };
  std::uint64_t total = 0;
  auto chunk0 = *cluster::read_code_chunk(source, 0, &total);

  SECTION("different bytes: the hash does not match") {
    auto other = bytes;
    other[bytes.size() - 1] ^= 1;
    auto tampered = write_file(t.path, "tampered", other);
    {
      CodeDownload d(store, hash, bytes.size());
      REQUIRE(serve(d, tampered) == CodeDownload::Step::failed);
      CHECK(d.error().find("does not match its hash") != std::string::npos);
    }
    CHECK(nothing_left());
  }
  SECTION("a chunk out of order") {
    {
      CodeDownload d(store, hash, bytes.size());
      d.next_requests();
      auto chunk1 = *cluster::read_code_chunk(source, kCodeChunkBytes, &total);
      REQUIRE(d.add(kCodeChunkBytes, total, chunk1) == CodeDownload::Step::failed);
      CHECK(d.error().find("where 0 was expected") != std::string::npos);
      CHECK(d.next_requests().empty());
    }
    CHECK(nothing_left());
  }
  SECTION("a chunk of the wrong size, or a size that changes") {
    CodeDownload d(store, hash, bytes.size());
    d.next_requests();
    CHECK(d.add(0, total, chunk0.substr(1)) == CodeDownload::Step::failed);
    CodeDownload e(store, hash, bytes.size());
    e.next_requests();
    CHECK(e.add(0, total + 8, chunk0) == CodeDownload::Step::failed);
    CHECK(e.error().find("size changed") != std::string::npos);
  }
  SECTION("the holder has no copy") {
    CodeDownload d(store, hash);
    d.next_requests();
    CHECK(d.add(0, 0, "") == CodeDownload::Step::failed);
    CHECK(d.error().find("no copy") != std::string::npos);
  }
  SECTION("a name that is not a hash is refused before anything is written") {
    CodeDownload d(store, "../../etc/passwd", 10);
    CHECK(d.next_requests().empty());
    CHECK(d.error().find("not a code hash") != std::string::npos);
    CHECK_FALSE(fs::exists(t.path / "etc"));
  }
  SECTION("given up half way (its sender went away): the part file is removed") {
    {
      CodeDownload d(store, hash, bytes.size());
      d.next_requests();
      REQUIRE(d.add(0, total, chunk0) == CodeDownload::Step::more);
      CHECK(fs::exists(store / (hash + ".part")));
    }
    CHECK(nothing_left());
  }
}

TEST_CASE("requests lost with a connection are asked again from where the download stopped", "[code]") {
  TempDir t;
  const auto bytes = random_bytes(9 * kCodeChunkBytes, 4);
  auto source = write_file(t.path, "exe", bytes);
  const auto hash = transport::sha256_hex(bytes);
  CodeDownload d(t.path / "store", hash, bytes.size());
  auto asked = d.next_requests();
  REQUIRE(asked.size() == 4);
  std::uint64_t total = 0;
  REQUIRE(d.add(0, total = bytes.size(), *cluster::read_code_chunk(source, 0, &total)) == CodeDownload::Step::more);
  REQUIRE(d.add(kCodeChunkBytes, total, *cluster::read_code_chunk(source, kCodeChunkBytes, &total)) ==
          CodeDownload::Step::more);
  // The connection drops with two requests unanswered; a new one asks again from the third chunk.
  d.restart();
  auto again = d.next_requests();
  REQUIRE(!again.empty());
  CHECK(again.front() == 2 * kCodeChunkBytes);
  for (auto off : again) {
    auto step = d.add(off, total, *cluster::read_code_chunk(source, off, &total));
    REQUIRE(step == CodeDownload::Step::more);
  }
  REQUIRE(serve(d, source) == CodeDownload::Step::done);
  CHECK(read_all(t.path / "store" / hash) == bytes);
}

TEST_CASE("SHA-256 fed in pieces equals the one-shot digest", "[code]") {
  const auto bytes = random_bytes(100000, 5);
  transport::Sha256 h;
  h.update(bytes.data(), 7);
  h.update(bytes.data() + 7, bytes.size() - 7);
  CHECK(h.hex() == transport::sha256_hex(bytes));
  CHECK(h.hex() == transport::sha256_hex(""));  // it starts over after a digest
}
