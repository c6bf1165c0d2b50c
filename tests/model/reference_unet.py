#!/usr/bin/python3
"""Reference for segserve's U-net: the segmentation_models_pytorch (smp) Unet rebuilt from
torchvision, with smp's module names, so that its state-dict keys are exactly smp's.

smp is not packaged in Debian, so this file re-creates smp's `Unet(encoder_name=
"resnet18"|"resnet34", encoder_depth=5, decoder_channels=(256, 128, 64, 32, 16),
decoder_use_batchnorm=True, decoder_attention_type=None, activation=None)` and adds the
skip pruning of Wilm et al. (level k removes the k highest-resolution skips). The decoder
is smp >= 0.5's (UnetDecoder.forward / UnetDecoderBlock.forward there): each block upsamples
(nearest) to the spatial size of the encoder level it returns to, so any input size works
without padding; for sizes divisible by 32 this equals smp 0.3's fixed 2x upsampling.
It reproduces the figures quoted in issue 3 (resnet18: 14,328,354 parameters / 182
state-dict keys; resnet34: 24,436,514 / 278 for 3 input channels and 2 classes).

Usage (Debian's interpreter, which sees python3-torch):
  /usr/bin/python3 tests/model/reference_unet.py counts
      prints the parameter/key table committed in tests/model/param_count_test.cc
  /usr/bin/python3 tests/model/reference_unet.py equivalence OUT_DIR
      writes state dicts, fixed inputs and reference outputs for the C++ tests
"""
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from torchvision.models.resnet import BasicBlock

DECODER_CHANNELS = (256, 128, 64, 32, 16)
ENCODER_LAYERS = {"resnet18": [2, 2, 2, 2], "resnet34": [3, 4, 6, 3]}
ENCODER_CHANNELS = (3, 64, 64, 128, 256, 512)  # smp's out_channels, [0] is the input


class ResNetEncoder(torchvision.models.resnet.ResNet):
    """smp.encoders.resnet.ResNetEncoder: a torchvision ResNet without fc/avgpool."""

    def __init__(self, name, in_channels=3):
        super().__init__(BasicBlock, ENCODER_LAYERS[name])
        del self.fc
        del self.avgpool
        if in_channels != 3:  # smp's patch_first_conv keeps the shape below
            self.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)

    def forward(self, x):
        stem = self.relu(self.bn1(self.conv1(x)))
        l1 = self.layer1(self.maxpool(stem))
        l2 = self.layer2(l1)
        l3 = self.layer3(l2)
        l4 = self.layer4(l3)
        return [x, stem, l1, l2, l3, l4]


class Conv2dReLU(nn.Sequential):
    def __init__(self, in_channels, out_channels):
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


class DecoderBlock(nn.Module):
    def __init__(self, in_channels, skip_channels, out_channels):
        super().__init__()
        self.conv1 = Conv2dReLU(in_channels + skip_channels, out_channels)
        self.attention1 = nn.Identity()
        self.conv2 = Conv2dReLU(out_channels, out_channels)
        self.attention2 = nn.Identity()

    def forward(self, x, height, width, skip=None):
        x = F.interpolate(x, size=(height, width), mode="nearest")
        if skip is not None:
            x = torch.cat([x, skip], dim=1)
            x = self.attention1(x)
        x = self.conv1(x)
        x = self.conv2(x)
        return self.attention2(x)


class UnetDecoder(nn.Module):
    def __init__(self, skip_prune_level):
        super().__init__()
        encoder_channels = ENCODER_CHANNELS[1:][::-1]
        in_channels = [encoder_channels[0]] + list(DECODER_CHANNELS[:-1])
        skip_channels = list(encoder_channels[1:]) + [0]
        # Level k removes the skips into blocks 4-k .. 3 (strides 2, 4, 8, 16 in turn).
        self.skip_used = [i < 4 - skip_prune_level for i in range(4)] + [False]
        skip_channels = [c if used else 0 for c, used in zip(skip_channels, self.skip_used)]
        self.center = nn.Identity()
        self.blocks = nn.ModuleList(
            DecoderBlock(i, s, o) for i, s, o in zip(in_channels, skip_channels, DECODER_CHANNELS)
        )

    def forward(self, *features):
        # [input, stem, layer1, ..., layer4] sizes, deepest first: block i upsamples to [i + 1].
        spatial_shapes = [f.shape[2:] for f in features][::-1]
        features = features[1:][::-1]
        x = self.center(features[0])
        skips = features[1:]
        taps = []
        for i, block in enumerate(self.blocks):
            height, width = spatial_shapes[i + 1]
            skip = skips[i] if i < len(skips) and self.skip_used[i] else None
            x = block(x, height, width, skip)
            taps.append(x)
        return x, taps


class SegmentationHead(nn.Sequential):
    def __init__(self, in_channels, classes):
        super().__init__(nn.Conv2d(in_channels, classes, 3, padding=1), nn.Identity(), nn.Identity())


class Unet(nn.Module):
    def __init__(self, encoder="resnet18", skip_prune_level=0, in_channels=3, classes=2):
        super().__init__()
        self.encoder = ResNetEncoder(encoder, in_channels)
        self.decoder = UnetDecoder(skip_prune_level)
        self.segmentation_head = SegmentationHead(DECODER_CHANNELS[-1], classes)

    def forward_with_taps(self, x):
        features = self.encoder(x)
        out, decoder_taps = self.decoder(*features)
        taps = dict(zip(["encoder.stem", "encoder.layer1", "encoder.layer2", "encoder.layer3",
                         "encoder.layer4"], features[1:]))
        taps.update({f"decoder.block{i}": t for i, t in enumerate(decoder_taps)})
        return self.segmentation_head(out), taps

    def forward(self, x):
        return self.forward_with_taps(x)[0]


def randomise(model, seed, in_channels):
    """Random weights and non-trivial BatchNorm statistics, so that BN matters in the tests.
    Running statistics are then calibrated on random inputs so that activations stay O(1)
    (as in a trained net) and an absolute tolerance of 1e-4 is meaningful."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if name.endswith("num_batches_tracked"):
                t.fill_(7)
            elif name.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=g) * 0.5 + 0.75)
            elif name.endswith("running_mean") or name.endswith(".bias"):
                t.copy_(torch.randn(t.shape, generator=g) * 0.1)
            elif t.dim() == 1:  # BN weight
                t.copy_(torch.rand(t.shape, generator=g) * 0.5 + 0.75)
            else:  # conv weight, He-scaled so activations stay O(1) through the net
                fan_in = t[0].numel()
                t.copy_(torch.randn(t.shape, generator=g) * (2.0 / fan_in) ** 0.5)
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the calibration batches
    model.train()
    with torch.no_grad():
        for _ in range(2):
            model(torch.randn(4, in_channels, 64, 64, generator=g))
    for m in bns:
        m.momentum = 0.1
    model.eval()


def counts():
    print("// encoder, level, parameters, state-dict keys (3 input channels, 2 classes)")
    for encoder in ("resnet18", "resnet34"):
        for level in range(5):
            m = Unet(encoder, level, 3, 2)
            params = sum(p.numel() for p in m.parameters())
            keys = len(m.state_dict())
            print(f'{{"{encoder}", {level}, {params}, {keys}}},')


def equivalence(out_dir):
    os.makedirs(out_dir, exist_ok=True)
    torch.manual_seed(0)
    # The last three have sizes not divisible by 32 (smp >= 0.5 accepts any size).
    cases = [("resnet18", 0, 3, 2, 64, 64), ("resnet18", 1, 3, 2, 64, 96),
             ("resnet34", 2, 1, 3, 96, 64), ("resnet18", 4, 4, 2, 64, 64),
             ("resnet34", 0, 3, 2, 100, 76), ("resnet18", 1, 3, 3, 37, 53),
             ("resnet18", 0, 1, 2, 5, 7)]
    for idx, (encoder, level, cin, classes, h, w) in enumerate(cases):
        model = Unet(encoder, level, cin, classes)
        randomise(model, 100 + idx, cin)
        model.eval()
        x = torch.randn(2, cin, h, w, generator=torch.Generator().manual_seed(idx))
        with torch.no_grad():
            y, taps = model.forward_with_taps(x)
        stem = f"case{idx}"
        torch.save(model.state_dict(), os.path.join(out_dir, stem + ".state_dict.pt"))
        data = {"input": x, "output": y}
        data.update({"tap." + k: v for k, v in taps.items()})
        torch.save(data, os.path.join(out_dir, stem + ".io.pt"))
        with open(os.path.join(out_dir, stem + ".config"), "w") as f:
            f.write(f"{encoder} {level} {cin} {classes}\n")
    # A torchvision ImageNet-layout ResNet state dict (random weights: nothing is downloaded).
    for name, ctor in (("resnet18", torchvision.models.resnet18),
                       ("resnet34", torchvision.models.resnet34)):
        tv = ctor(weights=None)
        torch.save(tv.state_dict(), os.path.join(out_dir, f"torchvision_{name}.pt"))
    # Files a user might bring by mistake: a training checkpoint and a whole pickled module.
    small = Unet("resnet18", 4, 1, 2)
    torch.save({"epoch": 3, "state_dict": small.state_dict()},
               os.path.join(out_dir, "training_checkpoint.pt"))
    torch.save(small, os.path.join(out_dir, "whole_module.pt"))
    with open(os.path.join(out_dir, "DONE"), "w") as f:
        f.write("ok\n")


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "counts":
        counts()
    elif len(sys.argv) >= 3 and sys.argv[1] == "equivalence":
        equivalence(sys.argv[2])
    else:
        sys.exit(__doc__)
