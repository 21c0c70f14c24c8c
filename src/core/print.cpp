// Printing in the style of torch: tensor([[1.0000, 2.0000], ...], dtype=f32)
#include <adnn/core/tensor.hpp>

#include <cmath>
#include <cstdio>
#include <sstream>

namespace adnn {

namespace {
void print_rec(std::ostream& os, const std::vector<double>& v, const Shape& s, size_t d, int64_t& pos,
               bool is_float, int indent) {
  if (d == s.size()) {
    double x = v[pos++];
    char buf[64];
    if (is_float) {
      if (std::isnan(x)) std::snprintf(buf, sizeof buf, "nan");
      else if (std::isinf(x)) std::snprintf(buf, sizeof buf, x > 0 ? "inf" : "-inf");
      else if (x != 0 && (std::fabs(x) >= 1e5 || std::fabs(x) < 1e-4)) std::snprintf(buf, sizeof buf, "%.4e", x);
      else std::snprintf(buf, sizeof buf, "%.4f", x);
    } else {
      std::snprintf(buf, sizeof buf, "%lld", (long long)x);
    }
    os << buf;
    return;
  }
  os << "[";
  const int64_t n = s[d];
  const bool summarize = n > 12;
  for (int64_t i = 0; i < n; ++i) {
    if (summarize && i == 6) {
      // skip the middle
      int64_t skip = n - 12;
      int64_t inner = 1;
      for (size_t k = d + 1; k < s.size(); ++k) inner *= s[k];
      pos += skip * inner;
      i += skip - 1;
      os << "...";
      if (d + 1 < s.size()) os << ",\n" << std::string(indent + 1, ' ');
      else os << ", ";
      continue;
    }
    if (i > 0) {
      os << ",";
      if (d + 1 < s.size()) os << "\n" << std::string(indent + 1, ' ');
      else os << " ";
    }
    print_rec(os, v, s, d + 1, pos, is_float, indent + 1);
  }
  os << "]";
}
}  // namespace

std::ostream& operator<<(std::ostream& os, const Tensor& t) {
  if (!t.defined()) return os << "tensor(undefined)";
  std::vector<double> v = t.to_vector();
  os << "tensor(";
  int64_t pos = 0;
  print_rec(os, v, t.sizes(), 0, pos, t.is_floating_point(), 7);
  os << ", shape=" << shape_str(t.sizes()) << ", dtype=" << dtype_name(t.dtype());
  if (!t.device().is_cpu()) os << ", device=" << t.device().str();
  if (t.requires_grad()) os << ", requires_grad=true";
  return os << ")";
}

std::string to_string(const Tensor& t) {
  std::ostringstream os;
  os << t;
  return os.str();
}

}  // namespace adnn
