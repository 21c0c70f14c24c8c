#!/usr/bin/python3
"""The Python half of tests/test_export.cpp: loads a state dict that adnn exported
(nn::save_pytorch_safetensors) into the PyTorch twin of the model with
load_state_dict(strict=True), runs adnn's input through it and compares the logits.

    export_roundtrip.py WEIGHTS IO
WEIGHTS: the exported .safetensors; IO: "input" (NHWC, as adnn) and "logits" (adnn's), with the
model to build in its metadata ("model": sequential | torchvision_efficientnet | adnn_fer).
Prints the largest difference; exits 0 when within the tolerance, 1 otherwise, 77 (skipped)
without torch. Reads safetensors itself (examples/adnn_fer/torch_twin.py), no extra package.
"""
import os
import sys

try:
    import torch
    from torch import nn
except ImportError:
    print("export_roundtrip: python3-torch is not installed (skipped)")
    sys.exit(77)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples", "adnn_fer"))
import torch_twin  # noqa: E402


def sequential():
    """The torch.nn twin of the nn::Sequential in tests/test_export.cpp (3-channel input)."""
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),                               # 0
        nn.BatchNorm2d(8),                                           # 1
        nn.ReLU(),                                                   # 2
        nn.Conv2d(8, 8, 3, stride=2, padding=2, dilation=2, groups=4, bias=False),  # 3
        nn.MaxPool2d(3, stride=1, padding=1),                        # 4
        nn.Conv2d(8, 12, (3, 5), padding=(1, 2), padding_mode="reflect"),  # 5
        nn.AvgPool2d(2),                                             # 6
        nn.Conv2d(12, 12, 3, padding=1, padding_mode="replicate"),   # 7
        nn.Conv2d(12, 16, 3, padding=1, padding_mode="circular"),    # 8
        nn.AdaptiveAvgPool2d((3, 2)),                                # 9
        nn.Identity(),                                               # 10
        nn.AdaptiveAvgPool2d(1),                                     # 11
        nn.Flatten(),                                                # 12
        nn.Dropout(0.5),                                             # 13
        nn.Linear(16, 5),                                            # 14
    )


def torchvision_efficientnet(meta):
    from torchvision.models.efficientnet import _efficientnet_conf, EfficientNet
    settings, last = _efficientnet_conf("efficientnet_b0", width_mult=float(meta["width"]),
                                        depth_mult=float(meta["depth"]))
    return EfficientNet(settings, 0.2, num_classes=int(meta["num_classes"]), last_channel=last)


def main():
    sd, _ = torch_twin.load_safetensors(sys.argv[1])
    io, meta = torch_twin.load_safetensors(sys.argv[2])
    kind = meta["model"]
    if kind == "sequential":
        model = sequential()
    elif kind == "torchvision_efficientnet":
        model = torchvision_efficientnet(meta)
    elif kind == "adnn_fer":
        _, fer_meta = torch_twin.load_safetensors(sys.argv[1])
        model = torch_twin.AdnnFerTwin(fer_meta)
    else:
        print(f"export_roundtrip: unknown model '{kind}'")
        return 1
    model.load_state_dict(sd, strict=True)  # every name and shape, nothing missing or extra
    model.eval()
    x = io["input"].float().permute(0, 3, 1, 2)  # NHWC -> NCHW
    with torch.no_grad():
        y = model(x)
    ref = io["logits"].float()
    if y.shape != ref.shape:
        print(f"export_roundtrip: torch logits {tuple(y.shape)} but adnn's {tuple(ref.shape)}")
        return 1
    diff = (y - ref).abs().max().item()
    tol = float(meta.get("tolerance", "1e-4")) * max(1.0, ref.abs().max().item())
    print(f"export_roundtrip: {kind}: max |torch - adnn| = {diff:.3g} (tolerance {tol:.3g})")
    return 0 if diff <= tol else 1


if __name__ == "__main__":
    sys.exit(main())
