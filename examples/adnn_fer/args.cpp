// adnn-fer: command-line arguments and the --device choice (fer.hpp).
#include <cstring>

#include "fer.hpp"

#include <adnn/cuda/runtime.hpp>

namespace adnn_fer {

using namespace adnn;

std::string Args::get(const std::string& k, const std::string& d) const {
  auto it = kv.find(k);
  return it == kv.end() ? d : it->second;
}
int64_t Args::num(const std::string& k, int64_t d) const {
  if (!has(k)) return d;
  try {
    size_t used = 0;
    const int64_t v = std::stoll(get(k), &used);
    if (used == get(k).size()) return v;
  } catch (const std::exception&) {
  }
  ADNN_FAIL(cmd, ": --", k, " expects an integer, got '", get(k), "'");
}
double Args::real(const std::string& k, double d) const {
  if (!has(k)) return d;
  try {
    size_t used = 0;
    const double v = std::stod(get(k), &used);
    if (used == get(k).size()) return v;
  } catch (const std::exception&) {
  }
  ADNN_FAIL(cmd, ": --", k, " expects a number, got '", get(k), "'");
}

Args parse_args(int argc, char** argv) {
  Args a;
  if (argc > 1) a.cmd = argv[1];
  for (int i = 2; i < argc; ++i) {
    std::string s = argv[i];
    if (s.rfind("--", 0) != 0) {
      a.positional.push_back(s);
      continue;
    }
    s = s.substr(2);
    if (i + 1 < argc && std::strncmp(argv[i + 1], "--", 2) != 0 && s != "train" && s != "resume")
      a.kv[s] = argv[++i];
    else
      a.kv[s] = "1";
  }
  return a;
}

Device pick_device(const Args& a) {
  const std::string d = a.get("device", "auto");
  if (d != "auto") return Device(d);
#if ADNN_WITH_CUDA_BACKEND
  if (cuda_is_available() && !cuda::is_emulated()) return Device("cuda");  // a real GPU, not the emulator
#endif
  return kCPU;
}

}  // namespace adnn_fer
