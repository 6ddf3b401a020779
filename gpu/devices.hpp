// GPU discovery on a node: NVML is loaded at run time (dlopen), so the same binary runs on machines without
// an NVIDIA driver; there it finds zero GPUs and says why once, never an error. In a build with CUDA the
// runtime adds SM counts, and a driver too old for the runtime also means zero GPUs (with the reason).
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
  std::string pci_bus;        // "00000000:1B:00.0"
  int sm_count = 0;           // from the CUDA runtime (0 in a build without CUDA)
};

// What a GPU is doing now (NVML); sent with every heartbeat.
struct Telemetry {
  int index = 0;
  double temperature_c = 0;
  double power_w = 0, power_limit_w = 0;
  double utilization_pct = 0;
  double memory_used_gib = 0;
  int sm_clock_mhz = 0, memory_clock_mhz = 0;
};

// The GPUs of this machine; `note` explains an empty result (no driver, NVML failed, a driver older than the
// CUDA runtime this build uses).
std::vector<DeviceInfo> detect_devices(std::string* note = nullptr);
// Makes CUDA number devices as NVML does (by PCI bus: CUDA_DEVICE_ORDER=PCI_BUS_ID unless already set), so a
// GPU index the node reports is the CUDA ordinal its workers use. Call before the first CUDA call.
void use_pci_device_order();
// Telemetry of every GPU NVML sees (empty without a driver). Cheap enough for every heartbeat.
std::vector<Telemetry> read_telemetry();

// "NVIDIA H100 80GB HBM3" -> "H100"; "NVIDIA GeForce RTX 4090" -> "RTX4090".
std::string short_model(const std::string& full_name);

}  // namespace iogrid::gpu
