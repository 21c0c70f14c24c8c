#pragma once
// Devices: `cpu` and `cuda[:index]`. A cuda device is served by a real GPU (ADNN_CUDA) or,
// by the SIMT emulator (ADNN_CUDA_EMULATION); an emulated one prints as "cuda:0 (emulated)".
#include <ostream>
#include <string>

namespace adnn {

enum class DeviceType : uint8_t { cpu, cuda };

struct Device {
  DeviceType type = DeviceType::cpu;
  int index = 0;
  constexpr Device() = default;
  constexpr Device(DeviceType t, int i = 0) : type(t), index(i) {}
  Device(const char* spec) : Device(parse(spec)) {}           // "cpu", "cuda", "cuda:1"
  Device(const std::string& spec) : Device(parse(spec)) {}
  // "cuda:0 (emulated)" (what str() gives under the emulator) reads back as cuda:0
  static Device parse(const std::string& spec);
  bool is_cpu() const { return type == DeviceType::cpu; }
  bool is_cuda() const { return type == DeviceType::cuda; }
  // "cpu", "cuda:0", or "cuda:0 (emulated)" when the SIMT emulator serves cuda (torch has no
  // emulator; the label keeps an emulated run from passing for a GPU one in logs and errors)
  std::string str() const;
  friend bool operator==(const Device& a, const Device& b) { return a.type == b.type && a.index == b.index; }
  friend bool operator!=(const Device& a, const Device& b) { return !(a == b); }
};
inline std::ostream& operator<<(std::ostream& os, const Device& d) { return os << d.str(); }

constexpr Device kCPU{DeviceType::cpu, 0};
constexpr Device kCUDA{DeviceType::cuda, 0};

// Number of usable CUDA devices (0 without a GPU or without the CUDA runtime).
int cuda_device_count();
// True when this build can create tensors on `cuda`.
bool cuda_is_available();
// True when `cuda` is served by the SIMT emulator on the host (ADNN_CUDA_EMULATION), not a GPU.
bool cuda_is_emulated();

}  // namespace adnn
