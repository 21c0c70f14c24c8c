#!/usr/bin/python3
"""A PyTorch twin of ADNN-FER with the resnet_nano, vgg_nano or vgg_nano_wide backbone (the nano configurations):
the same modules under the same names, so that the state dict `adnn-fer export --to pytorch`
writes loads with load_state_dict(strict=True) and gives adnn's logits.

    import torch_twin
    sd, meta = torch_twin.load_safetensors("nano_torch.safetensors")
    model = torch_twin.AdnnFerTwin(meta)          # the FerConfig from the file's metadata
    model.load_state_dict(sd, strict=True)
    logits = model.eval()(images)                 # images (N, 1, 48, 48), NCHW as torch's

Needs only torch (Debian's python3-torch): the safetensors file is read here (8-byte header
length, JSON header, raw little-endian data), no `safetensors` package needed.
"""
import json
import struct

import torch
from torch import nn

_DTYPES = {"F32": torch.float32, "F64": torch.float64, "F16": torch.float16, "BF16": torch.bfloat16,
           "I64": torch.int64, "I32": torch.int32, "U8": torch.uint8, "BOOL": torch.bool}


def load_safetensors(path):
    """{name: tensor} and the metadata dict of a .safetensors file."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    meta = header.pop("__metadata__", {})
    base, out = 8 + n, {}
    for name, h in header.items():
        a, b = h["data_offsets"]
        t = torch.frombuffer(bytearray(data[base + a:base + b]), dtype=_DTYPES[h["dtype"]])
        out[name] = t.reshape(h["shape"])
    return out, meta


def _conv_bn(cin, cout, k, stride=1):
    return nn.Conv2d(cin, cout, k, stride=stride, padding=(k - 1) // 2, bias=False), nn.BatchNorm2d(cout)


class BasicBlock(nn.Module):
    """torchvision's BasicBlock: conv1 3×3 (stride) → bn1 → ReLU → conv2 3×3 → bn2, + shortcut, ReLU."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1, self.bn1 = _conv_bn(cin, cout, 3, stride)
        self.conv2, self.bn2 = _conv_bn(cout, cout, 3)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(*_conv_bn(cin, cout, 1, stride))

    def forward(self, x):
        y = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
        return torch.relu(y + (self.downsample(x) if self.downsample is not None else x))


class VggBlock(nn.Module):
    """conv1 3×3 → bn1 → ReLU → conv2 3×3 → bn2 → ReLU with a 2×2 max pool (floor) placed by `pool`:
    "none", "after" (after the second ReLU) or "between" (right after conv1, before bn1)."""

    def __init__(self, cin, cout, pool):
        super().__init__()
        self.conv1, self.bn1 = _conv_bn(cin, cout, 3)
        self.conv2, self.bn2 = _conv_bn(cout, cout, 3)
        self.pool = pool

    def forward(self, x):
        pool = torch.nn.functional.max_pool2d
        y = self.conv1(x)
        if self.pool == "between":
            y = pool(y, 2)
        y = torch.relu(self.bn2(self.conv2(torch.relu(self.bn1(y)))))
        return pool(y, 2) if self.pool == "after" else y


class ChannelAttention(nn.Module):
    def __init__(self, c, r):
        super().__init__()
        self.fc1 = nn.Conv2d(c, r, 1, bias=False)
        self.fc2 = nn.Conv2d(r, c, 1, bias=False)

    def forward(self, x):
        mlp = lambda p: self.fc2(torch.relu(self.fc1(p)))  # noqa: E731
        a = mlp(x.mean((2, 3), keepdim=True)) + mlp(x.amax((2, 3), keepdim=True))
        return x * torch.sigmoid(a)


class ConvBn(nn.Module):
    def __init__(self, cin, cout, k):
        super().__init__()
        self.conv, self.bn = _conv_bn(cin, cout, k)

    def forward(self, x):
        return self.bn(self.conv(x))


class SpatialAttention(nn.Module):
    def __init__(self, k=7):
        super().__init__()
        self.conv = ConvBn(2, 1, k)

    def forward(self, x):
        maps = torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], 1)  # mean, max over C
        return x * torch.sigmoid(self.conv(maps))


class CBAM(nn.Module):
    def __init__(self, c, reduction):
        super().__init__()
        self.channel = ChannelAttention(c, max(1, int(c / reduction + 0.5)))  # C++ lround, not banker's round()
        self.spatial = SpatialAttention()

    def forward(self, x):
        return self.spatial(self.channel(x))


class PositionalEmbedding(nn.Module):
    def __init__(self, length, dim):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1, length, dim))

    def forward(self, x):
        return x + self.weight


# adnn's VggNano::vgg_layouts(): each VGG backbone's block widths and where each block pools
VGG_LAYOUTS = {
    "vgg_nano": ((32, 64, 128, 256), ("after", "after", "after", "none")),
    "vgg_nano_wide": ((32, 96, 192, 256), ("after", "between", "between", "none")),
}


class AdnnFerTwin(nn.Module):
    """ADNN-FER (resnet_nano, vgg_nano or vgg_nano_wide backbone) built from the FerConfig map (model.* keys)."""

    def __init__(self, meta):
        super().__init__()
        self.backbone = meta["model.backbone"]
        if self.backbone != "resnet_nano" and self.backbone not in VGG_LAYOUTS:
            raise ValueError(f"torch_twin: backbone {self.backbone} has no twin here "
                             f"(resnet_nano, {', '.join(VGG_LAYOUTS)} only)")
        i = lambda k: int(meta[k])  # noqa: E731
        size, cin, classes = i("model.image_size"), i("model.in_chans"), i("model.num_classes")
        cbam, transformer = meta["model.cbam"] == "1", meta["model.transformer"] == "1"
        d = i("model.d_model")
        vgg = VGG_LAYOUTS.get(self.backbone)  # (widths, pools), or None for resnet_nano
        head = vgg[0][3] if vgg else (d if transformer else 192)
        stage5 = vgg[0][2] if vgg else 192
        g = size
        for _ in range(3):
            g = g // 2 if vgg else (g + 1) // 2
        # registration order = adnn's (head first, backbone last); names are what matter
        if cbam:
            self.cbam_stage5 = CBAM(stage5, i("model.cbam_reduction"))
            self.cbam_head = CBAM(head, i("model.cbam_reduction"))
        self.transformer = transformer
        self.proj = None
        feat = head
        if transformer:
            if head != d:
                self.proj = nn.Linear(head, d)
            self.pos_embed = PositionalEmbedding(g * g, d)
            layer = nn.TransformerEncoderLayer(d, i("model.heads"), dim_feedforward=i("model.d_ff"), dropout=0.0,
                                               activation="gelu", batch_first=True, norm_first=True)
            self.encoder = nn.TransformerEncoder(layer, i("model.layers"), enable_nested_tensor=False)
            feat = d
        self.norm = nn.LayerNorm(feat)
        self.head = nn.Linear(feat, classes)
        if vgg:
            widths, pools = vgg
            ins = (cin,) + widths[:3]
            self.block1, self.block2, self.block3, self.block4 = (
                VggBlock(ins[k], widths[k], pools[k]) for k in range(4))
        else:
            self.conv1, self.bn1 = _conv_bn(cin, 32, 3)
            self.layer1 = BasicBlock(32, 48, 2)
            self.layer2 = BasicBlock(48, 96, 2)
            self.layer3 = BasicBlock(96, 192, 2)
            self.layer4 = BasicBlock(192, 192, 1)
            self.conv_head, self.bn2 = _conv_bn(192, head, 1)
        self.cbam = cbam

    def forward(self, x):  # (N, C, S, S) NCHW -> logits (N, classes)
        if self.backbone in VGG_LAYOUTS:
            y = self.block3(self.block2(self.block1(x)))
            if self.cbam:
                y = self.cbam_stage5(y)
            y = self.block4(y)
        else:
            y = torch.relu(self.bn1(self.conv1(x)))
            y = self.layer3(self.layer2(self.layer1(y)))
            if self.cbam:
                y = self.cbam_stage5(y)
            y = torch.relu(self.bn2(self.conv_head(self.layer4(y))))
        if self.cbam:
            y = self.cbam_head(y)
        if self.transformer:
            t = y.flatten(2).transpose(1, 2)  # (N, L, C) tokens in raster order, as adnn's NHWC reshape
            if self.proj is not None:
                t = self.proj(t)  # (N, L, d)
            p = self.encoder(self.pos_embed(t)).mean(1)
        else:
            p = y.mean((2, 3))
        return self.head(self.norm(p))
