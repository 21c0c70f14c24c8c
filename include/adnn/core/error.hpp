#pragma once
// adnn::Error — the one exception type. Messages name the op and the shapes, dtypes and
// devices involved, so a user can find the failing call without a debugger.
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace adnn {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

namespace detail {
template <class... Args>
std::string cat(Args&&... args) {
  std::ostringstream os;
  (os << ... << std::forward<Args>(args));
  return os.str();
}
[[noreturn]] void throw_error(const char* file, int line, const std::string& msg);
}  // namespace detail

}  // namespace adnn

// ADNN_CHECK(cond, parts...): throws adnn::Error("<parts> (file:line)") when cond is false.
#define ADNN_CHECK(cond, ...)                                                   \
  do {                                                                          \
    if (!(cond)) ::adnn::detail::throw_error(__FILE__, __LINE__, ::adnn::detail::cat(__VA_ARGS__)); \
  } while (0)

#define ADNN_FAIL(...)                                                          \
  do {                                                                          \
    ::adnn::detail::throw_error(__FILE__, __LINE__, ::adnn::detail::cat(__VA_ARGS__)); \
  } while (0)
