// adnn-fer predict: top classes for face images, and loading a trained checkpoint (fer.hpp).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>

#include "fer.hpp"

namespace adnn_fer {

using namespace adnn;

std::shared_ptr<AdnnFer> load_model(const std::string& path, Device device) {
  return nn::load_adnn_fer(path, device);
}

int cmd_predict(const Args& a) {
  const std::string ckpt = a.get("checkpoint");
  require_regular_file("predict: --checkpoint", ckpt);
  for (const std::string& path : a.positional) require_regular_file("predict: image", path);
  const Device dev = pick_device(a);
  auto model = load_model(ckpt, dev);
  const FerConfig& c = model->config();
  const auto& classes = data::fer2013_classes();
  const int64_t top = std::min<int64_t>(a.num("top", 3), c.num_classes);
  const data::PreprocessOptions pre = preprocess_options(c);
  for (const std::string& path : a.positional) {
    data::Image img = data::preprocess(data::read_image(path), pre);  // CLAHE, resize, channels
    Tensor x = data::to_tensor(img);                                  // (S, S, C), pixels 0..255
    x = ((x / 255.0) - 0.5) / 0.5;                                    // as the loader
    NoGradGuard ng;
    Tensor p = softmax((*model)(x.unsqueeze(0).to(dev)), 1).to(kCPU);  // (1, K)
    std::vector<double> pv = p.to_vector();
    for (size_t k = 0; k < pv.size(); ++k)
      ADNN_CHECK(std::isfinite(pv[k]), "predict: checkpoint ", ckpt, " gives a non-finite probability (", pv[k],
                 ") for ", path, ": are its weights finite?");
    std::vector<size_t> order(pv.size());
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(), [&](size_t i, size_t j) { return pv[i] > pv[j]; });
    std::printf("%s:", path.c_str());
    for (int64_t k = 0; k < top; ++k) {
      const size_t ci = order[size_t(k)];
      std::printf("  %s %.3f", ci < classes.size() ? classes[ci].c_str() : std::to_string(ci).c_str(), pv[ci]);
    }
    std::printf("\n");
  }
  return 0;
}

}  // namespace adnn_fer
