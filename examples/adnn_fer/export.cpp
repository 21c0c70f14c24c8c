// adnn-fer export: a checkpoint as a PyTorch state dict (docs/export.md).
//   --to pytorch  the whole model, torch's layouts, adnn's names (= the torch twin's:
//                 examples/adnn_fer/torch_twin.py), the FerConfig in the metadata
//   --to timm     the backbone alone under timm's names, for
//                 timm.create_model(BACKBONE, num_classes=0, in_chans=C).load_state_dict(...)
#include "fer.hpp"

#include <cstdio>

using namespace adnn;

namespace adnn_fer {

int cmd_export(const Args& a) {
  if (a.positional.size() != 1)
    throw UsageError("export: give exactly one output file (OUT), got " + std::to_string(a.positional.size()));
  const std::string ckpt = a.get("checkpoint"), to = a.get("to"), out = a.positional[0];
  require_regular_file("checkpoint", ckpt);
  auto model = load_model(ckpt, kCPU);
  const FerConfig& c = model->config();
  std::map<std::string, std::string> meta = c.to_map();
  meta["adnn.source"] = ckpt;
  std::vector<std::pair<std::string, Tensor>> sd = nn::pytorch_state_dict(*model);
  if (to == "timm") {
    // timm's EfficientNet (conv_stem, bn1, blocks, conv_head, bn2) and ResNet (conv1, bn1,
    // layer1..4) names are the backbone's own; their classifiers are not part of ADNN-FER.
    const bool effnet = c.backbone.rfind("efficientnet_b", 0) == 0 || c.backbone.rfind("tf_efficientnet_b", 0) == 0;
    ADNN_CHECK(effnet || c.backbone == "resnet50", "export --to timm: backbone '", c.backbone, "' of ", ckpt,
               " has no timm model (efficientnet_b0..b7, tf_efficientnet_b0..b7 and resnet50 do); use --to pytorch");
    const std::vector<std::string> prefixes =
        effnet ? std::vector<std::string>{"conv_stem.", "bn1.", "blocks.", "conv_head.", "bn2."}
               : std::vector<std::string>{"conv1.", "bn1.", "layer1.", "layer2.", "layer3.", "layer4."};
    std::vector<std::pair<std::string, Tensor>> backbone;
    for (auto& [n, t] : sd)
      for (const std::string& p : prefixes)
        if (n.rfind(p, 0) == 0) {
          backbone.push_back({n, t});
          break;
        }
    sd = std::move(backbone);
    meta["timm.model"] = c.backbone;
    meta["timm.num_classes"] = "0";
    meta["timm.in_chans"] = std::to_string(c.in_chans);
  }
  meta["format"] = "pt";
  io::save_safetensors(out, sd, meta);
  int64_t n = 0;
  for (auto& [k, t] : sd) n += t.numel();
  std::printf("wrote %s: %zu tensors, %lld values, torch layouts (%s)\n", out.c_str(), sd.size(), (long long)n,
              to == "timm" ? ("timm " + c.backbone + ", num_classes=0, in_chans=" + std::to_string(c.in_chans)).c_str()
                           : "examples/adnn_fer/torch_twin.py loads it");
  return 0;
}

}  // namespace adnn_fer
