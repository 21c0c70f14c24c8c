// Names and call counters of the op table's entries (dispatch.hpp).
#include "dispatch/dispatch.hpp"

#include <atomic>

namespace adnn {

const char* unary_name(UnaryOp op) {
  static const char* n[] = {"neg",   "exp",        "log",        "sqrt",       "rsqrt",       "abs",
                            "relu",  "leaky_relu", "sigmoid",    "tanh",       "silu",        "gelu",
                            "clamp", "pow",        "add_scalar", "mul_scalar", "rsub_scalar", "rdiv_scalar"};
  return n[int(op)];
}
const char* binary_name(BinaryOp op) {
  static const char* n[] = {"add", "sub", "mul", "div", "pow", "maximum", "minimum",
                            "eq", "ne", "lt", "le", "gt", "ge"};
  return n[int(op)];
}

namespace backend {

const char* const op_names[kOpCount] = {
#define ADNN_OP(family, name, device, params, args) #name,
#include "dispatch/op_table.def"
#undef ADNN_OP
};
const char* const op_families[kOpCount] = {
#define ADNN_OP(family, name, device, params, args) #family,
#include "dispatch/op_table.def"
#undef ADNN_OP
};

namespace {
std::atomic<uint64_t> g_calls[2][kOpCount];
}

void note_call(OpId id, bool cuda) { g_calls[cuda][int(id)].fetch_add(1, std::memory_order_relaxed); }
uint64_t op_calls(OpId id, bool cuda) { return g_calls[cuda][int(id)].load(std::memory_order_relaxed); }
void reset_op_calls() {
  for (auto& dev : g_calls)
    for (auto& c : dev) c.store(0, std::memory_order_relaxed);
}

}  // namespace backend
}  // namespace adnn
