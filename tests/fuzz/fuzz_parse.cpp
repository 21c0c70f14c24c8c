// libFuzzer harness: the checked number parser against the C library as an oracle. Whatever
// parse_int64 / parse_uint64 / parse_double accept, strtoll / strtoull / strtod must read
// the same text whole, to the same value; whatever they reject must be outside the grammar
// (space, garbage, empty), out of range, or non-finite when that is refused.
#include <adnn/core/error.hpp>
#include <adnn/core/parse.hpp>

#include <cerrno>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

namespace {
bool plain(const std::string& s) {  // what both sides agree is in the grammar: no spaces
  for (char c : s)
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v' || c == '\0') return false;
  return !s.empty();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string s(reinterpret_cast<const char*>(data), size);
  const bool hexlike = s.find_first_of("xXpP") != std::string::npos;  // strtod reads hex, we do not
  // int64
  {
    bool ok = true;
    int64_t v = 0;
    try {
      v = adnn::parse_int64(s, "fuzz", -1000000, 1000000);
    } catch (const adnn::Error&) {
      ok = false;
    }
    errno = 0;
    char* end = nullptr;
    const long long ref = std::strtoll(s.c_str(), &end, 10);
    const bool ref_whole = plain(s) && end == s.c_str() + s.size() && errno == 0;
    const bool ref_ok = ref_whole && ref >= -1000000 && ref <= 1000000 && s.find("+-") != 0 && s != "+";
    if (ok && (!ref_whole || ref != v)) __builtin_trap();
    if (!ok && ref_ok) __builtin_trap();
  }
  // uint64
  {
    bool ok = true;
    uint64_t v = 0;
    try {
      v = adnn::parse_uint64(s, "fuzz");
    } catch (const adnn::Error&) {
      ok = false;
    }
    errno = 0;
    char* end = nullptr;
    const unsigned long long ref = std::strtoull(s.c_str(), &end, 10);
    const bool ref_whole = plain(s) && end == s.c_str() + s.size() && errno == 0 && s.find('-') == std::string::npos;
    if (ok && (!ref_whole || ref != v)) __builtin_trap();
    if (!ok && ref_whole && s.rfind("+", 0) != 0) __builtin_trap();
  }
  // double
  for (auto nf : {adnn::NonFinite::refuse, adnn::NonFinite::allow}) {
    bool ok = true;
    double v = 0;
    try {
      v = adnn::parse_double(s, "fuzz", nf, -1e300, 1e300);
    } catch (const adnn::Error&) {
      ok = false;
    }
    errno = 0;
    char* end = nullptr;
    const double ref = std::strtod(s.c_str(), &end);
    // (strtod sets ERANGE for subnormal results, which parse_double accepts)
    const bool ref_read = plain(s) && end == s.c_str() + s.size();
    const bool ref_whole = ref_read && errno == 0;
    if (ok) {
      if (!ref_read) __builtin_trap();
      if (std::isnan(ref) != std::isnan(v) || (!std::isnan(v) && ref != v)) __builtin_trap();
      if (nf == adnn::NonFinite::refuse && !std::isfinite(v)) __builtin_trap();
    } else if (ref_whole && !hexlike && std::isfinite(ref) && ref >= -1e300 && ref <= 1e300 && s[0] != '+') {
      __builtin_trap();  // a plain finite in-range decimal was refused
    }
  }
  return 0;
}
