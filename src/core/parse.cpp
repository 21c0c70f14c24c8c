// Checked number parsing (include/adnn/core/parse.hpp).
#include <adnn/core/error.hpp>
#include <adnn/core/parse.hpp>

#include <charconv>
#include <cmath>
#include <system_error>

namespace adnn {

namespace {

// The text as shown in an error: quoted, at most 40 characters, bytes outside printable
// ASCII as \xNN.
std::string shown(std::string_view t) {
  std::string s = "'";
  const size_t n = std::min<size_t>(t.size(), 40);
  for (size_t i = 0; i < n; ++i) {
    const auto c = static_cast<unsigned char>(t[i]);
    if (c >= 0x20 && c < 0x7f) {
      s += char(c);
    } else {
      static const char* hex = "0123456789abcdef";
      s += "\\x";
      s += hex[c >> 4];
      s += hex[c & 15];
    }
  }
  s += t.size() > n ? "'..." : "'";
  return s;
}

std::string_view skip_plus(std::string_view t) {
  if (t.size() > 1 && t[0] == '+' && t[1] != '-' && t[1] != '+') t.remove_prefix(1);
  return t;
}

}  // namespace

int64_t parse_int64(std::string_view text, std::string_view what, int64_t min, int64_t max) {
  const std::string_view t = skip_plus(text);
  int64_t v = 0;
  const auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), v, 10);
  if (ec == std::errc::result_out_of_range)
    ADNN_FAIL(what, ": ", shown(text), " is out of range [", min, ", ", max, "]");
  ADNN_CHECK(ec == std::errc() && end == t.data() + t.size() && !t.empty(), what, ": expected an integer, got ",
             shown(text));
  ADNN_CHECK(v >= min && v <= max, what, ": ", v, " is out of range [", min, ", ", max, "]");
  return v;
}

uint64_t parse_uint64(std::string_view text, std::string_view what, uint64_t max) {
  const std::string_view t = skip_plus(text);
  uint64_t v = 0;
  // from_chars for unsigned types refuses a '-', so "-1" cannot wrap to 2^64 - 1
  const auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), v, 10);
  if (ec == std::errc::result_out_of_range) ADNN_FAIL(what, ": ", shown(text), " is out of range [0, ", max, "]");
  ADNN_CHECK(ec == std::errc() && end == t.data() + t.size() && !t.empty(), what,
             ": expected a non-negative integer, got ", shown(text));
  ADNN_CHECK(v <= max, what, ": ", v, " is out of range [0, ", max, "]");
  return v;
}

double parse_double(std::string_view text, std::string_view what, NonFinite non_finite, double min, double max) {
  const std::string_view t = skip_plus(text);
  double v = 0;
  const auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), v, std::chars_format::general);
  const bool whole = end == t.data() + t.size() && !t.empty();
  if (ec == std::errc::result_out_of_range && whole)
    ADNN_FAIL(what, ": ", shown(text), " is out of the range of a double");
  ADNN_CHECK(ec == std::errc() && whole, what, ": expected a number, got ", shown(text));
  if (!std::isfinite(v)) {
    ADNN_CHECK(non_finite == NonFinite::allow, what, ": ", shown(text), " is not a finite number");
    return v;
  }
  ADNN_CHECK(v >= min && v <= max, what, ": ", v, " is out of range [", min, ", ", max, "]");
  return v;
}

}  // namespace adnn
