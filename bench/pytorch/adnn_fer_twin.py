#!/usr/bin/env python3
"""A PyTorch twin of ADNN-FER's paper configuration (adnn_fer_paper, src/nn/adnn_fer.cpp), the
baseline for `adnn-fer bench --model adnn_fer_paper` in the GPU kit (scripts/gpu-check.sh, step 4).

  EfficientNet-B5 features (timm's efficientnet_b5, drop_path 0.2) with CBAM after stage 5 and
  after the head (2048 channels) -> 7x7 = 49 tokens + a learned positional embedding ->
  nn.TransformerEncoder(norm_first=True, GELU, 6 layers, d_model 2048, 8 heads, d_ff 4096,
  dropout 0.1) -> mean over tokens -> LayerNorm -> dropout 0.3 -> Linear(2048, 7).
  Input 224x224x3, batch 32, AdamW (lr 1e-4, weight decay 0.05), cross-entropy.

Measures, like `adnn-fer bench`: training img/s (AdamW steps) and batch-1 inference latency
(eager, no_grad, median), in f32 and in AMP bf16 with channels_last (--precisions), and prints one
JSON object (also written to --json-out). Nothing is downloaded: weights are random.

When timm is not installed it falls back to torchvision's efficientnet_b5 (the same stage layout
and widths; BN eps differs) and says so in "backbone_source". --tiny shrinks everything (32x32,
batch 2, one encoder layer with d_ff 512; f32 only on the CPU) for a smoke test:

  python3 bench/pytorch/adnn_fer_twin.py --tiny --device cpu            # smoke test (seconds)
  python3 bench/pytorch/adnn_fer_twin.py --device cuda                  # the kit's GPU run
"""
import argparse
import json
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

p = argparse.ArgumentParser()
p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
p.add_argument("--image-size", type=int, default=224)
p.add_argument("--batch", type=int, default=32)
p.add_argument("--iters", type=int, default=8, help="timed training steps per precision")
p.add_argument("--latency-iters", type=int, default=30, help="timed batch-1 forwards per precision")
p.add_argument("--layers", type=int, default=6)
p.add_argument("--d-ff", type=int, default=4096)
p.add_argument("--precisions", default="f32,bf16", help="comma list of f32 (channels_first) and bf16 (AMP, channels_last)")
p.add_argument("--threads", type=int, default=0)
p.add_argument("--tiny", action="store_true", help="32x32, batch 2, 1 layer, d_ff 512, 1 iteration")
p.add_argument("--json-out", default="")
a = p.parse_args()
if a.tiny:
    a.image_size, a.batch, a.layers, a.d_ff = 32, 2, 1, 512
    a.iters, a.latency_iters = min(a.iters, 1), min(a.latency_iters, 1)
if a.threads:
    torch.set_num_threads(a.threads)
dev = torch.device(a.device)
D_MODEL, HEADS, CLASSES = 2048, 8, 7

try:
    import timm

    backbone_source = f"timm {timm.__version__} efficientnet_b5"
except ImportError:
    timm = None
    import torchvision

    backbone_source = (f"torchvision {torchvision.__version__} efficientnet_b5 "
                       "(FALLBACK: timm is not installed; same stages and widths, BN eps 1e-3)")


class CBAM(nn.Module):
    """Channel attention (avg + max pool -> shared MLP -> sigmoid), then spatial attention
    (7x7 conv over [mean, max] across channels -> sigmoid), as nn::CBAM."""

    def __init__(self, c, r=16, k=7):
        super().__init__()
        h = max(c // r, 1)
        self.mlp = nn.Sequential(nn.Conv2d(c, h, 1, bias=True), nn.ReLU(inplace=True), nn.Conv2d(h, c, 1, bias=True))
        self.spatial = nn.Conv2d(2, 1, k, padding=k // 2, bias=True)

    def forward(self, x):
        a = self.mlp(F.adaptive_avg_pool2d(x, 1)) + self.mlp(F.adaptive_max_pool2d(x, 1))
        x = x * torch.sigmoid(a)
        s = torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], 1)
        return x * torch.sigmoid(self.spatial(s))


class AdnnFerTwin(nn.Module):
    def __init__(self, image_size, layers, d_ff):
        super().__init__()
        if timm is not None:
            m = timm.create_model("efficientnet_b5", pretrained=False, num_classes=0, drop_path_rate=0.2)
            self.stem = nn.Sequential(m.conv_stem, m.bn1)
            self.stages = nn.ModuleList(list(m.blocks))
            self.head_conv = nn.Sequential(m.conv_head, m.bn2)
        else:
            f = torchvision.models.efficientnet_b5(stochastic_depth_prob=0.2).features
            self.stem = f[0]
            self.stages = nn.ModuleList([f[i] for i in range(1, 8)])
            self.head_conv = f[8]
        assert len(self.stages) == 7
        c5 = 176  # stage 5's output channels in B5
        self.cbam_stage5 = CBAM(c5)
        self.cbam_head = CBAM(D_MODEL)
        g = image_size
        for _ in range(5):  # stem and stages 2, 3, 4, 6 halve the grid
            g = (g + 1) // 2
        self.tokens = g * g
        self.pos_embed = nn.Parameter(torch.randn(1, self.tokens, D_MODEL) * 0.02)
        layer = nn.TransformerEncoderLayer(D_MODEL, HEADS, d_ff, dropout=0.1, activation="gelu",
                                           batch_first=True, norm_first=True)
        try:
            self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        except TypeError:  # older torch
            self.encoder = nn.TransformerEncoder(layer, layers)
        self.norm = nn.LayerNorm(D_MODEL)
        self.drop = nn.Dropout(0.3)
        self.head = nn.Linear(D_MODEL, CLASSES)

    def forward(self, x):
        y = self.stem(x)
        for i, s in enumerate(self.stages):
            y = s(y)
            if i == 4:
                y = self.cbam_stage5(y)
        y = self.cbam_head(self.head_conv(y))  # (N, 2048, h, w)
        t = y.flatten(2).transpose(1, 2) + self.pos_embed  # (N, L, 2048)
        t = self.encoder(t).mean(1)
        return self.head(self.drop(self.norm(t)))


def sync():
    if dev.type == "cuda":
        torch.cuda.synchronize()


def run(precision):
    torch.manual_seed(0)
    cl = precision == "bf16"
    model = AdnnFerTwin(a.image_size, a.layers, a.d_ff).to(dev)
    fmt = torch.channels_last if cl else torch.contiguous_format
    model = model.to(memory_format=fmt)
    amp = torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=precision == "bf16")
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.05)
    x = torch.randn(a.batch, 3, a.image_size, a.image_size, device=dev).to(memory_format=fmt)
    y = torch.randint(0, CLASSES, (a.batch,), device=dev)
    params = sum(p.numel() for p in model.parameters())

    def step():
        with amp:
            loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    model.train()
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    for _ in range(1 if a.tiny else 2):
        step()
    sync()
    t0 = time.perf_counter()
    for _ in range(a.iters):
        step()
    sync()
    train_s = time.perf_counter() - t0
    peak = torch.cuda.max_memory_allocated() / 2**20 if dev.type == "cuda" else None

    model.eval()
    x1 = x[:1].contiguous(memory_format=fmt)
    ms = []
    with torch.no_grad(), amp:
        for _ in range(1 if a.tiny else 2):
            model(x1)
        sync()
        for _ in range(a.latency_iters):
            t = time.perf_counter()
            model(x1)
            sync()
            ms.append((time.perf_counter() - t) * 1e3)
    del model, opt
    if dev.type == "cuda":
        torch.cuda.empty_cache()
    return {
        "precision": "f32" if precision == "f32" else "AMP bf16",
        "channels_last": cl,
        "params": params,
        "train_img_s": round(a.batch * a.iters / train_s, 2),
        "train_peak_MiB": round(peak, 1) if peak is not None else None,
        "infer_b1_eager_ms": round(statistics.median(ms), 3),
    }


results = []
for prec in [s.strip() for s in a.precisions.split(",") if s.strip()]:
    if prec == "bf16" and dev.type == "cpu":  # AMP bf16 is the GPU's mode (torch 1.13's CPU encoder rejects it)
        continue
    results.append(run(prec))
    print(json.dumps(results[-1]), file=sys.stderr, flush=True)

out = {
    "framework": f"torch {torch.__version__}",
    "cuda": torch.version.cuda,
    "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
    "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)",
    "backbone_source": backbone_source,
    "timm": timm is not None,
    "tiny": a.tiny,
    "shape": {"image_size": a.image_size, "batch": a.batch, "layers": a.layers, "d_model": D_MODEL, "heads": HEADS,
              "d_ff": a.d_ff, "classes": CLASSES, "iters": a.iters, "latency_iters": a.latency_iters},
    "command": "python3 bench/pytorch/adnn_fer_twin.py " + " ".join(sys.argv[1:]),
    "results": results,
}
s = json.dumps(out)
print(s)
if a.json_out:
    with open(a.json_out, "w") as f:
        f.write(s + "\n")
