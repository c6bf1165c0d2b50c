#!/usr/bin/python3
"""Python eager baseline for bench/model: the same U-net (tests/model/reference_unet.py, smp's
architecture) in Debian's torch, eval + no_grad, NCHW float32. Fastest of >= 3 iterations. Prints
  python,<encoder>,<level>,<batch>,eager,<images_per_s>
Usage: /usr/bin/python3 bench/model/python_eager.py [--threads N] [--seconds S] [--quick]"""
import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "tests", "model"))
import reference_unet  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=1.5)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--encoder", choices=("resnet18", "resnet34"))
    parser.add_argument("--level", type=int, choices=(0, 1))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    for encoder in (args.encoder,) if args.encoder else ("resnet18", "resnet34"):
        for level in (args.level,) if args.level is not None else (0, 1):
            model = reference_unet.Unet(encoder, level, 3, 2).eval()
            for batch in (1,) if args.quick else (1, 8):
                x = torch.randn(batch, 3, 256, 256)
                with torch.no_grad():
                    model(x)  # warm-up
                    times = []
                    start = time.perf_counter()
                    while len(times) < 3 or (time.perf_counter() - start < args.seconds
                                             and len(times) < 50):
                        t0 = time.perf_counter()
                        model(x)
                        times.append(time.perf_counter() - t0)
                print(f"python,{encoder},{level},{batch},eager,{batch / min(times):.2f}",
                      flush=True)


if __name__ == "__main__":
    main()
