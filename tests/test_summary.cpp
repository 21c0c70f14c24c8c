// MACs counted by the ops (adnn::MacCounter) against hand counts, and nn::summarize /
// format_summary (include/adnn/nn/summary.hpp): output shapes, execution order, parameters,
// trainable split, depth folding, thousands separators.
#include <map>

#include "testing.hpp"

using namespace adnn;
using namespace adnn::testing;

namespace {

// Runs a child module twice in its forward, registered after a child it runs later, with a
// functional op of its own: order, repeated calls and the parent's own MACs.
class TwoStage : public nn::Module {
 public:
  TwoStage() {
    second = register_module("second", std::make_shared<nn::Linear>(4, 3));
    first = register_module("first", std::make_shared<nn::Linear>(5, 4));
    frozen = register_parameter("frozen", ones({3, 3}));
    frozen.requires_grad_(false);
  }
  Tensor forward(const Tensor& x) override {
    Tensor h = relu((*first)(x));             // (B, 4)
    Tensor y = (*second)(h);                  // (B, 3)
    return matmul(y, frozen) + (*second)(h);  // (B, 3): 3·3 MACs per row of its own
  }
  std::shared_ptr<nn::Linear> first, second;
  Tensor frozen;
};

// A ModuleList its forward iterates, and a child it runs through forward() directly (no
// hooks) that has an op of its own: exact and lower-bound aggregates.
class Containers : public nn::Module {
 public:
  class Wrapper : public nn::Module {
   public:
    Wrapper() {
      lin = register_module("lin", std::make_shared<nn::Linear>(3, 3));
      w = register_parameter("w", ones({3, 3}));
    }
    Tensor forward(const Tensor& x) override { return matmul(x, w) + (*lin)(x); }  // (B, 3)
    std::shared_ptr<nn::Linear> lin;
    Tensor w;
  };
  Containers() {
    list = register_module("list", std::make_shared<nn::ModuleList>());
    list->add(std::make_shared<nn::Linear>(3, 3));
    list->add(std::make_shared<nn::Linear>(3, 3));
    wrapper = register_module("wrapper", std::make_shared<Wrapper>());
  }
  Tensor forward(const Tensor& x) override {
    Tensor y = x;
    for (size_t i = 0; i < list->size(); ++i) y = list->get_submodule(std::to_string(i))(y);  // (B, 3)
    return wrapper->forward(y);
  }
  std::shared_ptr<nn::ModuleList> list;
  std::shared_ptr<Wrapper> wrapper;
};

}  // namespace

TEST_SUITE("models") {
  TEST_CASE("MACs: conv2d, linear, matmul, attention and squeeze-excite count their hand counts") {
    manual_seed(1);
    {  // conv2d (N, H, W, C) = (2, 9, 7, 4), weight (6, 3, 2, 2): groups 2, stride 2, padding 1
      Tensor x = randn({2, 9, 7, 4}), w = randn({6, 3, 2, 2});
      MacCounter c;
      Tensor y = conv2d(x, w, {}, Conv2dOptions{}.with_stride(2).with_padding(1).with_groups(2));
      // OH = (9 + 2 - 3) / 2 + 1 = 5, OW = (7 + 2 - 2) / 2 + 1 = 4
      REQUIRE(y.sizes() == Shape{2, 5, 4, 6});
      CHECK(c.macs() == 2 * 5 * 4 * 6 * 3 * 2 * (4 / 2));
    }
    {  // depthwise 3x3, SAME
      Tensor x = randn({1, 8, 8, 5}), w = randn({5, 3, 3, 1});
      MacCounter c;
      conv2d(x, w, {}, Conv2dOptions{}.with_same().with_groups(5));
      CHECK(c.macs() == 8 * 8 * 5 * 9);
    }
    {  // linear (2, 3, 5) -> (2, 3, 4): the bias adds count none
      Tensor x = randn({2, 3, 5}), w = randn({4, 5}), b = randn({4});
      MacCounter c;
      linear(x, w, b);
      CHECK(c.macs() == 2 * 3 * 5 * 4);
    }
    {  // batched, broadcasting matmul (2, 1, 3, 4) x (5, 4, 6) -> (2, 5, 3, 6)
      Tensor a = randn({2, 1, 3, 4}), b = randn({5, 4, 6});
      MacCounter c;
      CHECK(matmul(a, b).sizes() == Shape{2, 5, 3, 6});
      CHECK(c.macs() == 2 * 5 * 3 * 4 * 6);
    }
    {  // matrix-vector
      MacCounter c;
      matmul(randn({7, 3}), randn({3}));
      CHECK(c.macs() == 7 * 3);
    }
    {  // attention q (B, H, Lq, D) = (2, 3, 4, 8), k and v (2, 3, 5, 8): q·kᵀ and p·v
      Tensor q = randn({2, 3, 4, 8}), k = randn({2, 3, 5, 8}), v = randn({2, 3, 5, 8});
      MacCounter c;
      scaled_dot_product_attention(q, k, v);
      CHECK(c.macs() == 2 * 3 * 4 * 5 * 8 + 2 * 3 * 4 * 5 * 8);
    }
    {  // squeeze-excite (N, H, W, C) = (2, 4, 4, 6), R = 3: the two FCs
      Tensor x = randn({2, 4, 4, 6});
      MacCounter c;
      squeeze_excite(x, randn({3, 6}), randn({3}), randn({6, 3}), randn({6}));
      CHECK(c.macs() == 2 * (6 * 3 + 3 * 6));
    }
    {  // elementwise ops count none; a backward pass adds nothing
      Tensor w = randn({4, 5}).requires_grad_(true), x = randn({3, 5});
      MacCounter c;
      Tensor loss = sum(relu(linear(x, w)) * 2.0);
      CHECK(c.macs() == 3 * 5 * 4);
      loss.backward();
      CHECK(c.macs() == 3 * 5 * 4);
    }
  }

  TEST_CASE("summarize: output shapes, MACs and parameters per module in execution order") {
    manual_seed(2);
    TwoStage m;
    const nn::ModelSummary s = nn::summarize(m, {2, 5});
    REQUIRE(s.layers.size() == 3);
    CHECK(s.layers[0].name == "");
    CHECK(s.layers[0].type == "TwoStage");
    // "first" was registered after "second" but runs first
    CHECK(s.layers[1].name == "first");
    CHECK(s.layers[1].type == "Linear");
    CHECK(s.layers[2].name == "second");
    CHECK(s.layers[1].output == Shape{2, 4});
    CHECK(s.layers[2].output == Shape{2, 3});
    CHECK(s.layers[1].calls == 1);
    CHECK(s.layers[2].calls == 2);
    CHECK(s.layers[1].macs == 2 * 5 * 4);
    CHECK(s.layers[2].macs == 2 * (2 * 4 * 3));
    CHECK(s.macs == 2 * 5 * 4 + 2 * (2 * 4 * 3) + 2 * 3 * 3);
    CHECK(s.layers[0].macs == s.macs);
    CHECK(s.layers[1].params == 5 * 4 + 4);
    CHECK(s.params == (5 * 4 + 4) + (4 * 3 + 3) + 9);
    CHECK(s.trainable == s.params - 9);
    // leaf outputs, f32: first's (2, 4) once, second's (2, 3) twice
    CHECK(s.activation_bytes == 4 * (2 * 4 + 2 * 2 * 3));
    CHECK(!m.is_training());
    // the hooks are gone: a second summary counts the same
    CHECK(nn::summarize(m, {2, 5}).layers[2].calls == 2);

    const std::string all = nn::format_summary(s, -1), top = nn::format_summary(s, 0);
    INFO(all);
    CHECK(all.find("└─first (Linear)") != std::string::npos);
    CHECK(all.find("[2, 4]") != std::string::npos);
    CHECK(all.find("Total params: 48") != std::string::npos);
    CHECK(all.find("Trainable params: 39") != std::string::npos);
    CHECK(all.find("Non-trainable params: 9") != std::string::npos);
    CHECK(all.find("Total MACs: 106 ") != std::string::npos);
    CHECK(top.find("└─") == std::string::npos);
    CHECK(top.find("TwoStage") != std::string::npos);
  }

  TEST_CASE("summarize: a container its parent iterates shows its entries' MACs; a partial sum says so") {
    Containers m;
    const nn::ModelSummary s = nn::summarize(m, {2, 3});
    std::map<std::string, nn::LayerSummary> by;
    for (const auto& l : s.layers) by[l.name] = l;
    CHECK(s.macs == 2 * (2 * 3 * 3) + 2 * (2 * 3 * 3));
    CHECK(by["list"].calls == 0);
    CHECK(by["list"].macs == 2 * (2 * 3 * 3));
    CHECK(by["wrapper"].calls == 0);
    CHECK(by["wrapper"].macs == 2 * 3 * 3);  // its lin only: its own matmul is not seen
    CHECK(by["wrapper"].macs_at_least);
    const std::string t = nn::format_summary(s, -1);
    INFO(t);
    CHECK(t.find("≥18") != std::string::npos);
  }

  TEST_CASE("summarize: the ADNN-FER nano stem and the thousands separators") {
    CHECK(nn::thousands(0) == "0");
    CHECK(nn::thousands(999) == "999");
    CHECK(nn::thousands(1000) == "1,000");
    CHECK(nn::thousands(1234567) == "1,234,567");
    CHECK(nn::thousands(-1234567) == "-1,234,567");
    nn::AdnnFer model(nn::fer_config("adnn_fer_nano"));
    const int64_t S = model.config().image_size, C = model.config().in_chans;
    const nn::ModelSummary s = nn::summarize(model, {1, S, S, C});
    CHECK(s.params == model.num_parameters());
    int64_t top_level = 0;
    bool stem = false;
    for (const auto& l : s.layers) {
      if (l.depth != 1) continue;
      top_level += l.macs;
      if (l.name == "block1") {  // two 3x3 convs to 32 channels at full resolution, then a 2x2 max pool
        stem = true;
        CHECK(l.type == "VggBlock");
        CHECK(l.output == Shape{1, S / 2, S / 2, 32});
        CHECK(l.macs == S * S * 32 * 9 * (C + 32));
      }
    }
    CHECK(stem);
    // every MAC of the forward is inside some top-level module, or the model's own ops
    CHECK(top_level <= s.macs);
    CHECK(top_level > s.macs * 9 / 10);
    CHECK(s.layers.front().output == Shape{1, model.config().num_classes});
  }
}
