#include "iogrid/tensor.hpp"

#include <cstdlib>
#include <cstring>

#include "gpu/memory.hpp"

namespace iogrid {

std::size_t element_size(DType t) {
  switch (t) {
    case DType::f32: return 4;
    case DType::f16: return 2;
    case DType::bf16: return 2;
    case DType::i32: return 4;
    case DType::i64: return 8;
    case DType::u8: return 1;
  }
  return 0;
}

const char* to_string(DType t) {
  switch (t) {
    case DType::f32: return "f32";
    case DType::f16: return "f16";
    case DType::bf16: return "bf16";
    case DType::i32: return "i32";
    case DType::i64: return "i64";
    case DType::u8: return "u8";
  }
  return "?";
}

std::string Device::str() const { return is_cpu() ? "cpu" : "cuda:" + std::to_string(index); }

namespace {

std::shared_ptr<void> allocate(std::size_t bytes, Device d) {
  if (d.is_cpu()) {
    const std::size_t rounded = (std::max<std::size_t>(bytes, 1) + 63) / 64 * 64;  // 64-byte aligned
    void* p = std::aligned_alloc(64, rounded);
    if (!p) throw Error("iogrid: cannot allocate " + std::to_string(bytes) + " bytes of host memory for a tensor");
    std::memset(p, 0, rounded);
    return std::shared_ptr<void>(p, [](void* q) { std::free(q); });
  }
  if (!gpu::cuda_built() || d.index < 0 || d.index >= gpu::cuda_device_count())
    throw Error("iogrid: no device " + d.str() + " here (" +
                (gpu::cuda_built() ? std::to_string(gpu::cuda_device_count()) + " CUDA device(s) visible"
                                   : std::string("this build has no CUDA")) +
                ")");
  try {
    void* p = gpu::device_alloc(d.index, bytes);
    const int index = d.index;
    return std::shared_ptr<void>(p, [index](void* q) { gpu::device_free(index, q); });
  } catch (const std::exception& e) {
    throw Error(std::string("iogrid: ") + e.what());
  }
}

}  // namespace

Tensor::Tensor(std::vector<std::int64_t> shape, DType dtype, Device device)
    : shape_(std::move(shape)), dtype_(dtype), device_(device) {
  for (auto d : shape_)
    if (d < 0) throw Error("iogrid: a tensor dimension is negative (" + describe() + ")");
  storage_ = allocate(nbytes(), device_);
}

std::size_t Tensor::numel() const {
  std::size_t n = 1;
  for (auto d : shape_) n *= static_cast<std::size_t>(d);
  return n;
}

std::string Tensor::describe() const {
  std::string s = std::string(to_string(dtype_)) + "[";
  for (std::size_t i = 0; i < shape_.size(); ++i) s += (i ? ", " : "") + std::to_string(shape_[i]);
  return s + "] on " + device_.str();
}

void Tensor::check_access(DType asked) const {
  if (!storage_) throw Error("iogrid: the tensor is empty (default-constructed)");
  if (!device_.is_cpu()) throw Error("iogrid: " + describe() + " is not in host memory; copy it with to(Device::cpu())");
  const bool half = asked == DType::f16 && (dtype_ == DType::f16 || dtype_ == DType::bf16);
  if (asked != dtype_ && !half)
    throw Error(std::string("iogrid: ") + describe() + " read as " + to_string(asked));
}

Tensor Tensor::to(Device d) const {
  if (d == device_) return *this;
  Tensor out(shape_, dtype_, d);
  try {
    if (device_.is_cpu()) gpu::copy_to_device(d.index, out.raw(), raw(), nbytes());
    else if (d.is_cpu()) gpu::copy_to_host(device_.index, out.raw(), raw(), nbytes());
    else {  // device to device through the host
      auto host = to(Device::cpu());
      gpu::copy_to_device(d.index, out.raw(), host.raw(), nbytes());
    }
  } catch (const std::exception& e) {
    throw Error(std::string("iogrid: ") + e.what());
  }
  return out;
}

Tensor Tensor::clone() const {
  Tensor out(shape_, dtype_, device_);
  if (device_.is_cpu()) std::memcpy(out.raw(), raw(), nbytes());
  else gpu::copy_device_to_device(device_.index, out.raw(), raw(), nbytes());
  return out;
}

Tensor Tensor::reshape(std::vector<std::int64_t> shape) const {
  Tensor t = *this;
  t.shape_ = std::move(shape);
  if (t.numel() != numel())
    throw Error("iogrid: cannot reshape " + describe() + " to " + std::to_string(t.numel()) + " elements");
  return t;
}

void Codec<Tensor>::write(Writer& w, const Tensor& t) {
  w.write_pod<std::uint8_t>(t.defined() ? 1 : 0);
  if (!t.defined()) return;
  w.write_pod<std::uint8_t>(static_cast<std::uint8_t>(t.dtype()));
  w.write_pod<std::uint32_t>(static_cast<std::uint32_t>(t.shape().size()));
  for (auto d : t.shape()) w.write_pod<std::int64_t>(d);
  if (w.measuring()) {  // only the size counts (nothing is read through the pointer)
    w.write(t.raw(), t.nbytes());
    return;
  }
  if (t.device().is_cpu()) w.write(t.raw(), t.nbytes());
  else {
    auto host = t.to(Device::cpu());
    w.write(host.raw(), host.nbytes());
  }
}

Tensor Codec<Tensor>::read(Reader& r) {
  if (r.read_pod<std::uint8_t>() == 0) return Tensor();
  auto dtype = r.read_pod<std::uint8_t>();
  if (dtype > static_cast<std::uint8_t>(DType::u8)) throw SerializationError("iogrid: a tensor with an unknown element type");
  auto ndim = r.read_pod<std::uint32_t>();
  if (ndim > 64) throw SerializationError("iogrid: a tensor with " + std::to_string(ndim) + " dimensions");
  std::vector<std::int64_t> shape(ndim);
  std::uint64_t bytes = element_size(static_cast<DType>(dtype));
  for (auto& d : shape) {
    d = r.read_pod<std::int64_t>();
    if (d < 0 || (d > 0 && bytes > (std::uint64_t(1) << 48) / std::uint64_t(d)))
      throw SerializationError("iogrid: a tensor with an impossible shape");
    bytes *= std::uint64_t(d);
  }
  const auto* p = r.take(bytes);  // checks the bytes are there before anything is allocated
  Tensor t(shape, static_cast<DType>(dtype));
  std::memcpy(t.raw(), p, t.nbytes());
  return t;
}

}  // namespace iogrid
