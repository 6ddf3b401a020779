#include "runtime/cluster/code_transfer.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "wire.capnp.h"

namespace iogrid::runtime::cluster {

std::optional<std::string> read_code_chunk(const std::filesystem::path& file, std::uint64_t offset, std::uint64_t* total) {
  std::ifstream in(file, std::ios::binary);
  if (!in) return std::nullopt;
  in.seekg(0, std::ios::end);
  const auto end = in.tellg();
  if (end <= 0 || offset >= static_cast<std::uint64_t>(end)) return std::nullopt;
  const auto size = static_cast<std::uint64_t>(end);
  std::string out(static_cast<std::size_t>(std::min(kCodeChunkBytes, size - offset)), '\0');
  in.seekg(static_cast<std::streamoff>(offset));
  in.read(out.data(), static_cast<std::streamsize>(out.size()));
  if (static_cast<std::size_t>(in.gcount()) != out.size()) return std::nullopt;
  if (total) *total = size;
  return out;
}

void ask_code_chunks(transport::Endpoint& ep, transport::ConnId holder, CodeDownload& d) {
  for (auto offset : d.next_requests()) {
    capnp::MallocMessageBuilder out;
    auto r = out.initRoot<proto::Envelope>().initCodeRequest();
    r.setHash(d.hash());
    r.setOffset(offset);
    ep.send(holder, out);
  }
}

void send_code_chunk(transport::Endpoint& ep, transport::ConnId to, const std::string& hash, std::uint64_t offset,
                     const std::filesystem::path& file) {
  std::uint64_t total = 0;
  auto chunk = file.empty() ? std::nullopt : read_code_chunk(file, offset, &total);
  if (!chunk)
    spdlog::error("asked for code {} at offset {}: {}", hash.substr(0, 12), offset,
                  file.empty() ? std::string("no such code here") : file.string() + " cannot be read there");
  capnp::MallocMessageBuilder out;
  auto c = out.initRoot<proto::Envelope>().initCode();
  c.setHash(hash);
  c.setOffset(offset);
  c.setTotal(chunk ? total : 0);
  if (chunk) c.setBytes(kj::arrayPtr(reinterpret_cast<const kj::byte*>(chunk->data()), chunk->size()));
  ep.send(to, out);
}

CodeDownload::CodeDownload(std::filesystem::path dir, std::string hash, std::uint64_t total)
    : dir_(std::move(dir)), hash_(std::move(hash)), total_(total) {
  if (hash_.empty() || hash_.find('/') != std::string::npos || hash_.find("..") != std::string::npos) {
    fail("not a code hash: '" + hash_ + "'");
    return;
  }
  std::error_code ec;
  std::filesystem::create_directories(dir_, ec);
  out_.open(dir_ / (hash_ + ".part"), std::ios::binary | std::ios::trunc);
  if (!out_) fail("cannot write " + (dir_ / (hash_ + ".part")).string());
}

CodeDownload::~CodeDownload() {
  if (out_.is_open()) out_.close();
  if (written_ != total_ || total_ == 0 || !error_.empty()) {
    std::error_code ec;
    std::filesystem::remove(dir_ / (hash_ + ".part"), ec);
  }
}

std::vector<std::uint64_t> CodeDownload::next_requests() {
  std::vector<std::uint64_t> out;
  if (over_) return out;
  if (total_ == 0) {  // size unknown: ask for the first chunk alone
    if (in_flight_ == 0) {
      out.push_back(requested_);
      requested_ += kCodeChunkBytes;
      ++in_flight_;
    }
    return out;
  }
  while (in_flight_ < kCodeWindow && requested_ < total_) {
    out.push_back(requested_);
    requested_ += kCodeChunkBytes;
    ++in_flight_;
  }
  return out;
}

CodeDownload::Step CodeDownload::fail(std::string why) {
  over_ = true;
  error_ = std::move(why);
  return Step::failed;
}

CodeDownload::Step CodeDownload::add(std::uint64_t offset, std::uint64_t total, std::string_view bytes) {
  if (over_) return error_.empty() ? Step::done : Step::failed;
  if (total == 0) return fail("the sender has no copy of code " + hash_.substr(0, 12));
  if (total_ != 0 && total != total_)
    return fail("the code's size changed from " + std::to_string(total_) + " to " + std::to_string(total) + " bytes");
  if (offset != written_)
    return fail("a chunk at offset " + std::to_string(offset) + " where " + std::to_string(written_) + " was expected");
  if (offset >= total || bytes.size() != std::min(kCodeChunkBytes, total - offset))
    return fail("a chunk of " + std::to_string(bytes.size()) + " bytes at offset " + std::to_string(offset) + " of " +
                std::to_string(total));
  total_ = total;
  out_.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out_) return fail("cannot write " + (dir_ / (hash_ + ".part")).string());
  sha_.update(bytes.data(), bytes.size());
  written_ += bytes.size();
  if (in_flight_ > 0) --in_flight_;
  if (written_ < total_) return Step::more;
  out_.close();
  if (!out_) return fail("cannot write " + (dir_ / (hash_ + ".part")).string());
  if (sha_.hex() != hash_) return fail("the code does not match its hash " + hash_.substr(0, 12));
  std::error_code ec;
  auto part = dir_ / (hash_ + ".part");
  std::filesystem::permissions(part, std::filesystem::perms::owner_all, ec);
  std::filesystem::rename(part, dir_ / hash_, ec);
  if (ec) return fail("cannot store " + (dir_ / hash_).string() + ": " + ec.message());
  over_ = true;
  return Step::done;
}

void CodeDownload::restart() {
  in_flight_ = 0;
  requested_ = written_;
}

}  // namespace iogrid::runtime::cluster
