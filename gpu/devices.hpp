// GPU discovery on a node: NVML is loaded at run time (dlopen), so the same binary runs on machines without
// an NVIDIA driver; there it finds zero GPUs and says why once, never an error.
#pragma once

#include <string>
#include <vector>

namespace iogrid::gpu {

struct DeviceInfo {
  int index = 0;
  std::string model;          // "H100", "A100", "RTX4090" (vendor prefixes dropped)
  std::string full_name;      // as NVML reports it
  double memory_gib = 0;
  double compute_capability = 0;
  std::string uuid;
};

// The GPUs of this machine; `note` explains an empty result (no driver, NVML failed).
std::vector<DeviceInfo> detect_devices(std::string* note = nullptr);

// "NVIDIA H100 80GB HBM3" -> "H100"; "NVIDIA GeForce RTX 4090" -> "RTX4090".
std::string short_model(const std::string& full_name);

}  // namespace iogrid::gpu
