#!/usr/bin/env python3
"""PyTorch baseline for `adnn-fer bench --model efficientnet_b0 --train`: the same AdamW
training step on torchvision's efficientnet_b0 (Debian's python3-torch and
python3-torchvision; nothing is downloaded). Prints img/s like adnn-fer.

  python3 bench/pytorch/efficientnet_train_step.py --image-size 96 --batch 32 --iters 3
"""
import argparse
import time

import torch
import torchvision

p = argparse.ArgumentParser()
p.add_argument("--image-size", type=int, default=96)
p.add_argument("--batch", type=int, default=32)
p.add_argument("--iters", type=int, default=3)
p.add_argument("--threads", type=int, default=2)
p.add_argument("--channels-last", action="store_true")
a = p.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(0)
model = torchvision.models.efficientnet_b0(num_classes=1000)
x = torch.randn(a.batch, 3, a.image_size, a.image_size)
if a.channels_last:
    model = model.to(memory_format=torch.channels_last)
    x = x.to(memory_format=torch.channels_last)
y = torch.randint(0, 1000, (a.batch,))
opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05)
model.train()


def step():
    loss = torch.nn.functional.cross_entropy(model(x), y)
    opt.zero_grad()
    loss.backward()
    opt.step()


step()
step()
t0 = time.perf_counter()
for _ in range(a.iters):
    step()
s = time.perf_counter() - t0
print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {a.batch}, "
      f"{a.image_size}x{a.image_size}, {a.iters} iterations in {s:.2f} s")
print(f"img/s: {a.batch * a.iters / s:.1f}")
