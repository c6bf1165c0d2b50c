#!/usr/bin/env python3
"""The PyTorch side of scripts/gpu-check.sh: the same U-net (tests/model/reference_unet.py,
smp's architecture) in the GPU machine's own PyTorch, measured the way bench/gpu/gpu_check.cc
measures segserve, in the same run. PyTorch in its best configuration: eval + no_grad,
BatchNorm in eval, channels-last, TF32 off for fp32, torch.autocast(bfloat16) for bf16;
training with Adam, CE + Dice, channels-last, autocast for bf16. Prints CSV:
  perf,py,<encoder>,1,<size>,<batch>,<fp32|bf16>,<images_per_s>
  train,py,resnet18,1,<size>,16,<fp32|bf16>,<images_per_s>
  gmac,<encoder>,1,<size>,<giga multiply-accumulates per image>
  matmul,py,bf16,<tflops>
Usage: python3 bench/gpu/python_reference.py [--device cuda:0] [--quick] [--seconds S]"""
import argparse
import os
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "tests", "model"))
import reference_unet  # noqa: E402


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def images_per_second(step, batch, device, seconds):
    step()
    step()
    sync(device)
    iterations, start = 0, time.perf_counter()
    while True:
        step()
        iterations += 1
        sync(device)
        elapsed = time.perf_counter() - start
        if iterations >= 3 and elapsed >= seconds:
            return iterations * batch / elapsed


def gmac(model, size):
    """Multiply-accumulates of the convolutions for one image (what dominates the U-net)."""
    total = [0]

    def hook(module, inputs, output):
        k = module.kernel_size[0] * module.kernel_size[1]
        total[0] += output.numel() * (module.in_channels // module.groups) * k

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        model(torch.randn(1, 3, size, size))
    for h in handles:
        h.remove()
    return total[0] / 1e9


def loss_fn(logits, target):
    ce = F.cross_entropy(logits, target)
    probs = logits.softmax(1)
    onehot = torch.zeros_like(probs).scatter_(1, target.unsqueeze(1), 1.0)
    p, t = probs[:, 1:], onehot[:, 1:]
    inter = (p * t).sum((0, 2, 3))
    card = p.sum((0, 2, 3)) + t.sum((0, 2, 3))
    return ce + (1 - ((2 * inter + 1) / (card + 1)).mean())


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cuda:0")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.backends.cudnn.benchmark = True
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.manual_seed(0)
    sizes = (256,) if args.quick else (256, 512)
    batches = (1, 8) if args.quick else (1, 8, 32)
    for encoder in ("resnet18", "resnet34"):
        model = reference_unet.Unet(encoder, 1, 3, 2).eval()
        for size in sizes:
            print(f"gmac,{encoder},1,{size},{gmac(model, size):.3f}", flush=True)
        model = model.to(device).to(memory_format=torch.channels_last)
        for precision in ("fp32", "bf16"):
            for size in sizes:
                for batch in batches:
                    x = torch.randn(batch, 3, size, size, device=device).contiguous(
                        memory_format=torch.channels_last)

                    def step():
                        with torch.no_grad(), torch.autocast(device.type, torch.bfloat16,
                                                             enabled=precision == "bf16"):
                            model(x)

                    ips = images_per_second(step, batch, device, args.seconds)
                    print(f"perf,py,{encoder},1,{size},{batch},{precision},{ips:.2f}", flush=True)
    size, batch = (128 if args.quick else 256), 16
    for precision in ("fp32", "bf16"):
        model = reference_unet.Unet("resnet18", 1, 3, 2).to(device).to(
            memory_format=torch.channels_last).train()
        adam = torch.optim.Adam(model.parameters(), lr=1e-3)
        x = torch.randn(batch, 3, size, size, device=device).contiguous(
            memory_format=torch.channels_last)
        y = (F.avg_pool2d(x[:, :1], 9, 1, 4).squeeze(1) > 0).long()

        def train_step():
            adam.zero_grad()
            with torch.autocast(device.type, torch.bfloat16, enabled=precision == "bf16"):
                logits = model(x)
            loss_fn(logits.float(), y).backward()
            adam.step()

        ips = images_per_second(train_step, batch, device, args.seconds)
        print(f"train,py,resnet18,1,{size},{batch},{precision},{ips:.2f}", flush=True)
    n = 2048 if args.quick else 8192
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    per_s = images_per_second(lambda: torch.mm(a, b), 1, device, args.seconds)
    print(f"matmul,py,bf16,{per_s * 2 * n ** 3 / 1e12:.2f}", flush=True)


if __name__ == "__main__":
    main()
