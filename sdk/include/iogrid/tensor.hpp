// Tensor: an n-dimensional array of one element type in host memory or on a GPU, owning its memory (freed
// with the last copy of the handle; copies of a Tensor share storage, clone() copies it). A Tensor is a task
// argument or result and can be put in the object store like any value; a device tensor travels through host
// memory (serialising copies it to the host).
//
//   iogrid::Tensor w({784, 256}, iogrid::DType::f32);          // zero-filled, in host memory
//   float* p = w.data<float>();
//   auto on_gpu = w.to(iogrid::Device::cuda(0));               // needs a CUDA build and a GPU
#pragma once

#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "iogrid/errors.hpp"
#include "iogrid/serialization.hpp"

namespace iogrid {

enum class DType : std::uint8_t { f32, f16, bf16, i32, i64, u8 };
std::size_t element_size(DType t);
const char* to_string(DType t);

struct Device {
  enum class Kind : std::uint8_t { cpu, cuda };
  Kind kind = Kind::cpu;
  int index = 0;
  static Device cpu() { return {}; }
  static Device cuda(int i) { return {Kind::cuda, i}; }
  bool is_cpu() const { return kind == Kind::cpu; }
  std::string str() const;  // "cpu", "cuda:0"
  friend bool operator==(const Device& a, const Device& b) { return a.kind == b.kind && (a.is_cpu() || a.index == b.index); }
};

class Tensor {
 public:
  Tensor() = default;
  // Zero-filled. Throws iogrid::Error for a negative dimension, or a device this build or machine lacks.
  Tensor(std::vector<std::int64_t> shape, DType dtype, Device device = Device::cpu());
  // A host tensor holding a copy of `values` (float, double->f32 not implied: the element type must match).
  template <class T>
  static Tensor from(const std::vector<T>& values, std::vector<std::int64_t> shape) {
    Tensor t(std::move(shape), dtype_of<T>());
    if (t.numel() != values.size())
      throw Error("iogrid: Tensor::from got " + std::to_string(values.size()) + " values for a shape of " +
                  std::to_string(t.numel()) + " elements");
    if (!values.empty()) std::memcpy(t.raw(), values.data(), t.nbytes());
    return t;
  }

  const std::vector<std::int64_t>& shape() const { return shape_; }
  std::int64_t dim(std::size_t i) const { return shape_.at(i); }
  DType dtype() const { return dtype_; }
  Device device() const { return device_; }
  std::size_t numel() const;
  std::size_t nbytes() const { return numel() * element_size(dtype_); }
  bool defined() const { return storage_ != nullptr; }

  // Host tensors only; T must match the element type (f16/bf16 read as std::uint16_t).
  template <class T>
  T* data() {
    check_access(dtype_of<T>());
    return static_cast<T*>(raw());
  }
  template <class T>
  const T* data() const {
    check_access(dtype_of<T>());
    return static_cast<const T*>(raw());
  }
  template <class T>
  std::vector<T> to_vector() const {
    auto host = device_.is_cpu() ? *this : to(Device::cpu());
    const T* p = host.data<T>();
    return std::vector<T>(p, p + host.numel());
  }
  // The raw bytes (host or device address).
  void* raw() { return storage_.get(); }
  const void* raw() const { return storage_.get(); }

  Tensor to(Device d) const;  // a copy on `d` (this same tensor when already there)
  Tensor clone() const;
  // The same storage seen with another shape of as many elements.
  Tensor reshape(std::vector<std::int64_t> shape) const;
  std::string describe() const;  // "f32[784, 256] on cpu"

  template <class T>
  static constexpr DType dtype_of() {
    if constexpr (std::is_same_v<T, float>) return DType::f32;
    else if constexpr (std::is_same_v<T, std::int32_t>) return DType::i32;
    else if constexpr (std::is_same_v<T, std::int64_t>) return DType::i64;
    else if constexpr (std::is_same_v<T, std::uint8_t>) return DType::u8;
    else if constexpr (std::is_same_v<T, std::uint16_t>) return DType::f16;  // f16 or bf16 bits
    else static_assert(sizeof(T) == 0, "Tensor elements are float, int32_t, int64_t, uint8_t, or uint16_t (f16/bf16 bits)");
  }

 private:
  void check_access(DType asked) const;
  std::vector<std::int64_t> shape_;
  DType dtype_ = DType::f32;
  Device device_;
  std::shared_ptr<void> storage_;
};

// Serialised as dtype, shape and the bytes (a device tensor is copied to the host first; it arrives on the host).
template <>
struct Codec<Tensor> {
  static void write(Writer& w, const Tensor& t);
  static Tensor read(Reader& r);
};

}  // namespace iogrid
