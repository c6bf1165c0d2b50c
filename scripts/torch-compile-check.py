#!/usr/bin/env python3
"""File: scripts/torch-compile-check.py — compiles every translation unit that uses LibTorch
against another LibTorch's headers (-fsyntax-only), to keep the source building on both the
Debian LibTorch 1.13 that CI uses and a current LibTorch 2.x (the CUDA build and the GPU
check use the wheel's). Needs a configured build tree (compile_commands.json) and an
unpacked libtorch-dev root (scripts/fetch-torch-headers.sh).

Usage: torch-compile-check.py BUILD_DIR TORCH_ROOT [--std c++17] [--jobs N] [--filter SUBSTR]
                              [--exclude SUBSTR ...]
Exit 0 when every unit compiles; otherwise prints the first errors of each failing unit.
"""
import argparse
import concurrent.futures
import json
import os
import shlex
import subprocess
import sys
import tempfile

TORCH_API_INCLUDE = "/usr/include/torch/csrc/api/include"


_pch_copies = {}


def pch_copy(header):
    if header not in _pch_copies:
        fd, path = tempfile.mkstemp(suffix=".hxx")
        with os.fdopen(fd, "w") as f, open(header) as src:
            f.write(src.read())
        _pch_copies[header] = path
    return _pch_copies[header]


def rewrite(command, torch_root, std):
    args = shlex.split(command)
    out = []
    i = 0
    while i < len(args):
        a = args[i]
        nxt = args[i + 1] if i + 1 < len(args) else None
        if a == "-isystem" and nxt == TORCH_API_INCLUDE:
            out += ["-isystem", torch_root + TORCH_API_INCLUDE, "-isystem", torch_root + "/usr/include"]
            i += 2
            continue
        if a == "-Xclang" and nxt == "-include-pch":
            i += 4  # -Xclang -include-pch -Xclang FILE
            continue
        if a == "-Xclang" and nxt == "-include":
            # A copy: clang would pick up the 1.13 precompiled header lying beside the original.
            out += ["-include", pch_copy(args[i + 3])]
            i += 4
            continue
        if a == "-o":
            i += 2
            continue
        if a.startswith("-fsanitize") or a in ("-Winvalid-pch", "-fpch-instantiate-templates"):
            i += 1
            continue
        if a.startswith("-std="):
            out.append("-std=" + std)
            i += 1
            continue
        out.append(a)
        i += 1
    return out + ["-fsyntax-only"]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("build_dir")
    p.add_argument("torch_root")
    p.add_argument("--std", default="c++17")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    p.add_argument("--filter", default="", help="only units whose path contains this")
    p.add_argument("--exclude", action="append", default=[],
                   help="skip units whose path contains this (repeatable)")
    a = p.parse_args()
    units = json.load(open(os.path.join(a.build_dir, "compile_commands.json")))
    units = [u for u in units if TORCH_API_INCLUDE in u["command"] and a.filter in u["file"]
             and not any(x in u["file"] for x in a.exclude)
             and not u["file"].endswith(".hxx.cxx")]
    # A unit listed twice (a library and a fuzz target compile the same file) is checked once.
    units = list({u["file"]: u for u in units}.values())
    if not units:
        print("torch-compile-check: no LibTorch translation units found", file=sys.stderr)
        return 2

    # One precompiled <torch/torch.h> for the other LibTorch, built once with the flags of the
    # first unit that uses the project's PCH (all of them share these flags): clang picks up
    # HEADER.pch for `-include HEADER`, so each unit then costs seconds instead of ~25 s.
    pch_units = [u for u in units if "-include-pch" in u["command"]]
    if pch_units:
        cmd = rewrite(pch_units[0]["command"], a.torch_root, a.std)[:-1]  # drop -fsyntax-only
        header = cmd[cmd.index("-include") + 1]
        cmd = [c for c in cmd if c != pch_units[0]["file"]]
        i = cmd.index("-include")
        del cmd[i:i + 2]
        if "-c" in cmd:
            cmd.remove("-c")
        cmd += ["-Wno-pragma-system-header-outside-header", "-x", "c++-header", header, "-Xclang", "-emit-pch", "-o", header + ".pch"]
        r = subprocess.run(cmd, cwd=pch_units[0]["directory"], capture_output=True, text=True)
        if r.returncode != 0:
            print("torch-compile-check: <torch/torch.h> itself does not compile:")
            print("\n".join(r.stderr.splitlines()[:40]))
            return 1

    def run(u):
        cmd = rewrite(u["command"], a.torch_root, a.std)
        r = subprocess.run(cmd, cwd=u["directory"], capture_output=True, text=True)
        return u["file"], r.returncode, r.stderr

    failed = 0
    with concurrent.futures.ThreadPoolExecutor(a.jobs) as pool:
        for path, rc, err in pool.map(run, units):
            rel = os.path.relpath(path)
            if rc == 0:
                print("ok     " + rel, flush=True)
            else:
                failed += 1
                print("FAILED " + rel, flush=True)
                print("\n".join(err.splitlines()[:40]), flush=True)
    print(f"torch-compile-check: {len(units) - failed} of {len(units)} units compile against "
          f"{a.torch_root} ({a.std})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
