// Parity with PyTorch: outputs of torch.nn.MultiheadAttention, a pre-norm
// TransformerEncoder (norm_first=True, GELU) and a torchvision EfficientNet, given the same
// weights, from fixtures written by tests/fixtures/make_torch_fixtures.py (Debian's
// python3-torch 1.13). Tolerance 1e-4 (adnn in f32 against torch's f64 / f32 outputs).
#include <cstdlib>

#include "testing.hpp"

using namespace adnn;
using namespace adnn::testing;

namespace {

std::string fixture(const std::string& name) { return std::string(ADNN_SOURCE_DIR) + "/tests/fixtures/" + name; }

// The entries of `st` under `prefix.`, with the prefix removed.
std::vector<std::pair<std::string, Tensor>> under(const io::SafeTensors& st, const std::string& prefix) {
  std::vector<std::pair<std::string, Tensor>> out;
  for (auto& [n, t] : st.tensors) {
    if (n.rfind(prefix + ".", 0) != 0) continue;
    std::string rest = n.substr(prefix.size() + 1);
    if (rest != "out" && rest != "out_masked") out.push_back({rest, t});  // skip the expected outputs
  }
  return out;
}

const Tensor& get(const io::SafeTensors& st, const std::string& name) {
  const Tensor* t = st.find(name);
  REQUIRE_MESSAGE(t, "fixture entry " << name);
  return *t;
}

void check_close(const Tensor& got, const Tensor& want, double tol) {
  REQUIRE(got.sizes() == want.sizes());
  const double d = max_abs_diff(got.to(DType::f64), want.to(DType::f64));
  INFO("max |adnn - torch| = " << d);
  CHECK(d <= tol);
}

// EfficientNet logits from a fixture: width, depth and classes from its "config" entry.
void check_efficientnet(const std::string& path, Device device) {
  io::SafeTensors st = io::load_safetensors(path);
  auto cfg = get(st, "config").to_vector();
  nn::EfficientNetConfig c;
  c.width = cfg[0];
  c.depth = cfg[1];
  c.num_classes = int64_t(cfg[2]);
  nn::EfficientNet m(c);
  std::vector<std::pair<std::string, Tensor>> sd;
  for (auto& [n, t] : st.tensors)
    if (n != "input" && n != "logits" && n != "config") sd.push_back({n, t});
  nn::load_pytorch_state_dict(m, sd);
  m.eval();
  m.to(device);
  NoGradGuard ng;
  Tensor logits = m(get(st, "input").to(device)).to(kCPU);
  check_close(logits, get(st, "logits"), 1e-4);
}

}  // namespace

TEST_SUITE("parity") {
  TEST_CASE("MultiheadAttention equals torch.nn.MultiheadAttention (with and without key padding mask)") {
    io::SafeTensors st = io::load_safetensors(fixture("torch_transformer.safetensors"));
    nn::MultiheadAttention mha(32, 4);
    nn::load_pytorch_state_dict(mha, under(st, "mha"));
    mha.eval();
    Tensor x = get(st, "x").to(DType::f32);
    NoGradGuard ng;
    check_close(mha(x), get(st, "mha.out"), 1e-4);
    check_close(mha.forward(x, get(st, "mask")), get(st, "mha.out_masked"), 1e-4);
  }

  TEST_CASE("TransformerEncoder equals torch's pre-norm TransformerEncoder (GELU)") {
    io::SafeTensors st = io::load_safetensors(fixture("torch_transformer.safetensors"));
    nn::TransformerOptions o;
    o.d_model = 32;
    o.nhead = 4;
    o.dim_feedforward = 64;
    o.dropout = 0.0;
    nn::TransformerEncoder enc(o, 2);
    nn::load_pytorch_state_dict(enc, under(st, "enc"));
    Tensor x = get(st, "x").to(DType::f32);
    NoGradGuard ng;
    check_close(enc(x), get(st, "enc.out"), 1e-4);
    check_close(enc.forward(x, get(st, "mask")), get(st, "enc.out_masked"), 1e-4);
  }

  TEST_CASE("EfficientNet logits equal torchvision's given the same weights") {
    check_efficientnet(fixture("torch_efficientnet_w025_d025.safetensors"), kCPU);
    // A full-size B0 (not committed, ~21 MB): make_torch_fixtures.py --full-b0 PATH
    if (const char* full = std::getenv("ADNN_B0_PARITY")) check_efficientnet(full, kCPU);
  }
}
