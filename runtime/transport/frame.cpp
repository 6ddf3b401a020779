#include "runtime/transport/frame.hpp"

#include <kj/exception.h>

#include <cstring>

namespace iogrid::runtime::transport {

namespace {
// Appends what Cap'n Proto writes to a string (reserved up front: one copy of the message, no zero fill).
class AppendTo final : public kj::OutputStream {
 public:
  explicit AppendTo(std::string& out) : out_(out) {}
  void write(const void* buffer, size_t size) override { out_.append(static_cast<const char*>(buffer), size); }

 private:
  std::string& out_;
};
}  // namespace

std::string encode_frame(capnp::MessageBuilder& msg) {
  auto segments = msg.getSegmentsForOutput();
  const auto n = static_cast<std::uint32_t>(capnp::computeSerializedSizeInWords(segments) * sizeof(capnp::word));
  std::string out;
  out.reserve(4 + std::size_t(n));
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((n >> (8 * i)) & 0xff));
  AppendTo sink(out);
  capnp::writeMessage(sink, segments);
  return out;
}

Frame::Frame(std::unique_ptr<capnp::word[]> words, std::size_t count) : words_(std::move(words)), count_(count) {}

proto::Envelope::Reader Frame::envelope() {
  try {
    if (!reader_) {
      capnp::ReaderOptions opts;
      opts.traversalLimitInWords = count_ * 2 + 1024;  // no amplification beyond the frame itself
      opts.nestingLimit = 32;
      reader_ = std::make_unique<capnp::FlatArrayMessageReader>(kj::arrayPtr(words_.get(), count_), opts);
    }
    auto env = reader_->getRoot<proto::Envelope>();
    env.which();  // touches the root: a broken pointer throws here
    return env;
  } catch (const kj::Exception& e) {
    throw FrameError(std::string("malformed frame: ") + e.getDescription().cStr());
  }
}

void FrameDecoder::feed(const char* data, std::size_t n) {
  if (pos_ > 0 && pos_ == buf_.size()) {
    buf_.clear();
    pos_ = 0;
    // A large frame (a job's executable) left a large buffer: give it back rather than keep it per connection.
    if (buf_.capacity() > kKeptCapacity) std::vector<char>().swap(buf_);
  } else if (pos_ > (1 << 20) && pos_ * 2 > buf_.size()) {
    buf_.erase(buf_.begin(), buf_.begin() + static_cast<std::ptrdiff_t>(pos_));
    pos_ = 0;
  }
  buf_.insert(buf_.end(), data, data + n);
}

std::unique_ptr<Frame> FrameDecoder::next() {
  if (buffered() < 4) return nullptr;
  const auto* p = reinterpret_cast<const unsigned char*>(buf_.data() + pos_);
  std::uint32_t len = std::uint32_t(p[0]) | std::uint32_t(p[1]) << 8 | std::uint32_t(p[2]) << 16 | std::uint32_t(p[3]) << 24;
  if (len > limit_)
    throw FrameError("frame of " + std::to_string(len) + " bytes exceeds the limit of " + std::to_string(limit_));
  if (len == 0 || len % sizeof(capnp::word) != 0)
    throw FrameError("frame length " + std::to_string(len) + " is not a whole number of words");
  if (buffered() < 4 + std::size_t(len)) return nullptr;
  const std::size_t count = len / sizeof(capnp::word);
  std::unique_ptr<capnp::word[]> words(new capnp::word[count]);  // not zeroed: every byte is copied in next
  std::memcpy(words.get(), buf_.data() + pos_ + 4, len);
  pos_ += 4 + len;
  return std::make_unique<Frame>(std::move(words), count);
}

}  // namespace iogrid::runtime::transport
