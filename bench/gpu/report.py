#!/usr/bin/env python3
"""Joins gpu_check's and python_reference.py's CSV lines (one run, one machine) into the
Markdown tables of docs/PERFORMANCE.md ("GPU"): segserve vs PyTorch images/s with their
ratio, and the achieved convolution throughput as a fraction of the measured bf16 matrix
product rate. Usage: report.py CPP_CSV PY_CSV"""
import sys


def read(path):
    rows = {}
    for line in open(path):
        f = line.strip().split(",")
        if f[0] in ("perf", "train") and len(f) == 8:
            rows[(f[0], f[1], f[2], f[4], f[5], f[6])] = float(f[7])
        elif f[0] == "gmac" and len(f) == 5:
            rows[("gmac", f[1], f[3])] = float(f[4])
        elif f[0] == "matmul" and len(f) == 4:
            rows[("matmul", f[1])] = float(f[3])
        elif f[0] in ("check", "build"):
            rows.setdefault("lines", []).append(line.strip())
    return rows


def main():
    cpp, py = read(sys.argv[1]), read(sys.argv[2])
    peak = cpp.get(("matmul", "cpp")) or py.get(("matmul", "py"))
    print("Checks (gpu_check):\n")
    for line in cpp.get("lines", []):
        print(f"    {line}")
    print(f"\nbf16 matrix product: segserve (LibTorch) {cpp.get(('matmul', 'cpp'), 0):.0f} "
          f"TFLOP/s, PyTorch {py.get(('matmul', 'py'), 0):.0f} TFLOP/s\n")
    print("| encoder | size | batch | precision | segserve img/s | PyTorch img/s | ratio "
          "| segserve TFLOP/s | of bf16 matmul |")
    print("|---|---|---|---|---|---|---|---|---|")
    for key in sorted(k for k in cpp if isinstance(k, tuple) and k[0] == "perf"):
        _, _, encoder, size, batch, precision = key
        ours = cpp[key]
        theirs = py.get(("perf", "py", encoder, size, batch, precision))
        g = py.get(("gmac", encoder, size))
        tflops = ours * 2 * g / 1e3 if g else None
        print(f"| {encoder} L1 | {size} | {batch} | {precision} | {ours:.1f} | "
              f"{theirs:.1f} | {ours / theirs:.2f} | "
              f"{tflops:.1f} | {tflops / peak:.1%} |" if theirs and tflops and peak else
              f"| {encoder} L1 | {size} | {batch} | {precision} | {ours:.1f} | - | - | - | - |")
    print("\n| training | size | batch | precision | segserve img/s | PyTorch img/s | ratio |")
    print("|---|---|---|---|---|---|---|")
    for key in sorted(k for k in cpp if isinstance(k, tuple) and k[0] == "train"):
        _, _, encoder, size, batch, precision = key
        theirs = py.get(("train", "py", encoder, size, batch, precision))
        ratio = f"{cpp[key] / theirs:.2f}" if theirs else "-"
        print(f"| {encoder} L1 | {size} | {batch} | {precision} | {cpp[key]:.1f} | "
              f"{theirs or 0:.1f} | {ratio} |")


if __name__ == "__main__":
    main()
