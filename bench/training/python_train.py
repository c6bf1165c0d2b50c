#!/usr/bin/python3
"""Python baseline for bench/training: the same U-net (tests/model/reference_unet.py), loss
(cross-entropy + soft Dice over foreground classes, smoothing 1), Adam step, random 256x256
inputs, in Debian's torch; NCHW and channels-last; fp32, and bf16 autocast over the forward
pass as torch.autocast("cpu") is documented for training (loss in fp32). Median step time
over --steps after 2 warm-up steps. Prints
  python,<encoder>,<level>,<batch>,<layout>,<precision>,<images_per_s>
Usage: /usr/bin/python3 bench/training/python_train.py [--threads 2] [--batch 8] [--steps 5]
       [--size 256] [--level 1] [--encoder resnet18] [--layout nchw|cl|both]
       [--precision fp32|bf16|both]"""
import argparse
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "tests", "model"))
import reference_unet  # noqa: E402


def loss_fn(logits, target):
    ce = F.cross_entropy(logits, target)
    probs = torch.softmax(logits, 1)
    onehot = torch.zeros_like(probs).scatter_(1, target.unsqueeze(1), 1.0)
    p, t = probs[:, 1:], onehot[:, 1:]
    inter = (p * t).sum((0, 2, 3))
    card = p.sum((0, 2, 3)) + t.sum((0, 2, 3))
    dice = (2 * inter + 1) / (card + 1)
    return ce + (1 - dice.mean())


def run(args, channels_last, bf16):
    torch.manual_seed(0)
    model = reference_unet.Unet(args.encoder, args.level, 3, 3)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.randn(args.batch, 3, args.size, args.size)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 3, (args.batch, args.size, args.size))
    times = []
    for i in range(args.steps + 2):
        t0 = time.perf_counter()
        opt.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = model(x)
        loss = loss_fn(logits.float(), y)
        loss.backward()
        opt.step()
        loss.item()
        if i >= 2:
            times.append(time.perf_counter() - t0)
    return args.batch / statistics.median(times)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--level", type=int, default=1)
    parser.add_argument("--encoder", default="resnet18")
    parser.add_argument("--layout", default="both", choices=("nchw", "cl", "both"))
    parser.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "both"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    for cl in (False, True):
        if (args.layout == "nchw" and cl) or (args.layout == "cl" and not cl):
            continue
        for precision in ("fp32", "bf16"):
            if args.precision not in ("both", precision):
                continue
            ips = run(args, cl, precision == "bf16")
            print(f"python,{args.encoder},{args.level},{args.batch},{'cl' if cl else 'nchw'},"
                  f"{precision},{ips:.3f}", flush=True)


if __name__ == "__main__":
    main()
