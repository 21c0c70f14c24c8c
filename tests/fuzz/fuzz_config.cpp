// libFuzzer harness: the configuration readers. The input goes through the flat JSON reader
// (a run directory's config.json); what it accepts must survive a write/read round trip
// unchanged. Its keys then override the nano configuration's key → value map and the map goes
// through nn::FerConfig::from_map, as checkpoint metadata and config.json do: a configuration
// it accepts must pass validate() and round-trip through to_map. Any adnn::Error is a
// correct rejection; a crash, a sanitizer report, a hang or another exception is a bug.
#include <adnn/core/error.hpp>
#include <adnn/io/json.hpp>
#include <adnn/nn/adnn_fer.hpp>

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::map<std::string, std::string> m;
  try {
    m = adnn::io::parse_json_object(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz");
  } catch (const adnn::Error&) {
    return 0;
  }
  if (adnn::io::parse_json_object(adnn::io::write_json_object(m), "round trip") != m) __builtin_trap();
  static const std::map<std::string, std::string> nano = adnn::nn::fer_config("adnn_fer_nano").to_map();
  std::map<std::string, std::string> config = nano;
  for (auto& [k, v] : m) config[k] = v;
  try {
    const adnn::nn::FerConfig c = adnn::nn::FerConfig::from_map(config);
    c.validate();
    if (adnn::nn::FerConfig::from_map(c.to_map()).to_map() != c.to_map()) __builtin_trap();
  } catch (const adnn::Error&) {
  }
  return 0;
}
