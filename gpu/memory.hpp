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
// The calling thread's share of `device`'s memory: a worker bound to a fraction f of a GPU may hold at most
// f x the device's memory in what device_alloc gives its thread; past that device_alloc throws naming the share
// (several fractional workers share a device without over-committing it). fraction >= 1 or <= 0: no cap.
void set_thread_memory_share(int device, double fraction);
void* device_alloc(int device, std::size_t bytes);  // zero-filled
void device_free(int device, void* p) noexcept;
// Host <-> device copies; from 1 MiB on they move through two pinned staging buffers per thread on a stream
// of its own, so filling one buffer overlaps the transfer of the other.
void copy_to_device(int device, void* dst, const void* src, std::size_t bytes);
void copy_to_host(int device, void* dst, const void* src, std::size_t bytes);
void copy_device_to_device(int device, void* dst, const void* src, std::size_t bytes);

}  // namespace iogrid::gpu
