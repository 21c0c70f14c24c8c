#pragma once
// SGD with momentum / Nesterov and weight decay (torch.optim.SGD semantics).
#include <adnn/ops/ops.hpp>

#include <vector>

namespace adnn::optim {

struct SGDOptions {
  double lr = 0.01;
  double momentum = 0.0;
  double weight_decay = 0.0;
  bool nesterov = false;
};

class SGD {
 public:
  SGD(std::vector<Tensor> params, SGDOptions opts) : params_(std::move(params)), opts_(opts), buf_(params_.size()) {
    ADNN_CHECK(opts.lr >= 0, "SGD: negative learning rate ", opts.lr);
    ADNN_CHECK(!opts.nesterov || opts.momentum > 0, "SGD: nesterov needs momentum > 0");
  }
  void zero_grad() {
    for (auto& p : params_) p.set_grad(Tensor());
  }
  void step() {
    NoGradGuard ng;
    for (size_t i = 0; i < params_.size(); ++i) {
      Tensor& p = params_[i];
      Tensor g = p.grad();
      if (!g.defined()) continue;
      if (opts_.weight_decay != 0) g = add(g, mul(p, opts_.weight_decay));
      if (opts_.momentum != 0) {
        if (!buf_[i].defined())
          buf_[i] = g.clone();
        else
          buf_[i] = add(mul(buf_[i], opts_.momentum), g);
        g = opts_.nesterov ? add(g, mul(buf_[i], opts_.momentum)) : buf_[i];
      }
      p.add_(g, -opts_.lr);
    }
  }
  SGDOptions& options() { return opts_; }

 private:
  std::vector<Tensor> params_;
  SGDOptions opts_;
  std::vector<Tensor> buf_;
};

}  // namespace adnn::optim
