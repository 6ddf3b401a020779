// Device memory for tensors: allocation, release and copies on a CUDA device. Built without CUDA (or on a
// machine without a GPU) every call throws std::runtime_error saying so; host memory never comes here.
#pragma once

#include <cstddef>
#include <string>

namespace iogrid::gpu {

bool cuda_built();           // this build has the CUDA side
// 0 without a driver, without a GPU, or with a driver older than the runtime; `why` says which.
int cuda_device_count(std::string* why = nullptr);
int cuda_sm_count(int device);  // 0 when unknown
// Makes `device` the calling thread's current CUDA device (a worker binding its lease's GPU); does nothing in
// a build without CUDA or when the device is not there.
void select_device(int device) noexcept;
void* device_alloc(int device, std::size_t bytes);  // zero-filled
void device_free(int device, void* p) noexcept;
void copy_to_device(int device, void* dst, const void* src, std::size_t bytes);
void copy_to_host(int device, void* dst, const void* src, std::size_t bytes);
void copy_device_to_device(int device, void* dst, const void* src, std::size_t bytes);

}  // namespace iogrid::gpu
