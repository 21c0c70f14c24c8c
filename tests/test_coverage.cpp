// The op table (src/dispatch/op_table.def) against the test registry: every backend entry
// point must be reached by some registry case, on the CPU and on `cuda`, and every family in
// the table must have its three mirrored files. Coverage is not opt-in: an entry added to the
// table without a registry case fails here, naming it.
#include <adnn/cuda/runtime.hpp>

#include <filesystem>

#include "dispatch/dispatch.hpp"
#include "testing.hpp"

using namespace adnn;
using namespace adnn::testing;
namespace fs = std::filesystem;

namespace {

// Runs every registry case forward (and backward when it has differentiable inputs) with
// inputs on `device`, counting the op-table entries reached.
void run_registry_on(Device device) {
  for (auto& c : registry()) {
    INFO("op " << c.name);
    auto xs = make_inputs(c, false);
    for (auto& x : xs) x = x.to(device);
    for (size_t i = 0; i < xs.size(); ++i)
      if (c.inputs[i].differentiable) xs[i].requires_grad_(true);
    Tensor out = c.fn(xs);
    REQUIRE(out.defined());
    if (any_differentiable(c) && out.requires_grad()) sum(out).backward();
  }
}

std::vector<std::string> unreached(bool cuda) {
  std::vector<std::string> missing;
  for (int i = 0; i < backend::kOpCount; ++i)
    if (backend::op_calls(backend::OpId(i), cuda) == 0)
      missing.push_back(std::string(backend::op_families[i]) + "/" + backend::op_names[i]);
  return missing;
}

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (auto& x : v) s += (s.empty() ? "" : ", ") + x;
  return s;
}

}  // namespace

TEST_SUITE("ops") {
  TEST_CASE("op table: every entry is reached by the registry on the CPU") {
    REQUIRE(backend::kOpCount >= 38);
    manual_seed(5);
    backend::reset_op_calls();
    run_registry_on(kCPU);
    const auto missing = unreached(false);
    INFO("op-table entries no registry case reaches on cpu: " << join(missing));
    CHECK(missing.empty());
    for (int i = 0; i < backend::kOpCount; ++i) CHECK(backend::op_calls(backend::OpId(i), true) == 0);
  }

  TEST_CASE("op table: every family has its kernel, CPU twin and CUDA launcher files") {
    const fs::path root = ADNN_SOURCE_DIR;
    for (int i = 0; i < backend::kOpCount; ++i) {
      const std::string f = backend::op_families[i];
      INFO("family " << f << " (entry " << backend::op_names[i] << ")");
      CHECK(fs::exists(root / "src/cpu" / (f + ".cpp")));
      CHECK(fs::exists(root / "src/cuda" / (f + ".cpp")));
      if (f != "gemm") CHECK(fs::exists(root / "kernels" / (f + ".cuh")));  // device GEMM is cuBLAS
    }
  }
}

TEST_SUITE("cuda") {
  TEST_CASE("op table: every entry is reached by the registry on cuda") {
    if (!cuda_is_available()) ADNN_SKIP("no CUDA device on this machine");
    manual_seed(6);
    backend::reset_op_calls();
    run_registry_on(kCUDA);
    const auto missing = unreached(true);
    INFO("op-table entries no registry case reaches on cuda: " << join(missing));
    CHECK(missing.empty());
  }
}
