#pragma once
// The one checked way to turn text (a command-line value, a checkpoint's metadata, a CSV
// field) into a number. The whole text must be the number: no leading or trailing spaces,
// no trailing characters ("48abc", "1e3" for an integer), no empty string. The value must
// lie in [min, max]; doubles must be finite unless non-finite values are asked for. Every
// failure is an adnn::Error that starts with `what` (the flag, key or file:line being read)
// and shows the offending text, e.g. "recipe.epochs: expected an integer, got '1e3'".
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>

namespace adnn {

// Base 10, an optional leading '-' (or '+').
int64_t parse_int64(std::string_view text, std::string_view what,
                    int64_t min = std::numeric_limits<int64_t>::min(),
                    int64_t max = std::numeric_limits<int64_t>::max());
// Base 10, an optional leading '+'; no sign '-' (not even "-0").
uint64_t parse_uint64(std::string_view text, std::string_view what,
                      uint64_t max = std::numeric_limits<uint64_t>::max());

enum class NonFinite { refuse, allow };
// Decimal or scientific notation ("0.1", "-3", "1e-3"); "inf", "nan" (any case, optional
// sign) only with NonFinite::allow. A value too large for a double is out of range, as is a
// non-zero value that underflows it. Range limits apply to finite values.
double parse_double(std::string_view text, std::string_view what, NonFinite non_finite = NonFinite::refuse,
                    double min = -std::numeric_limits<double>::infinity(),
                    double max = std::numeric_limits<double>::infinity());

}  // namespace adnn
