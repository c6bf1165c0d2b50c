#!/usr/bin/python3
"""Python side of tests/integration/model_transfer_test.cc (issue 15, weights in and out).

  make DIR    writes DIR/r34.pt: torch.save(state_dict) of an smp-layout resnet34 L0 U-net
              (tests/model/reference_unet.py, random weights: ~98 MB, over the server's
              default 64 MiB message limit), DIR/io.pt: an input at the odd size 100x76 and
              the model's output for it
  check DIR SMP TV
              SMP (a Models.Export FORMAT_SMP file) must load with strict=True into the same
              architecture, hold exactly DIR/r34.pt's tensors and give exactly its output;
              TV (FORMAT_TORCHVISION_ENCODER) must load with strict=True into torchvision's
              resnet34 with fc = Identity and hold the encoder's tensors. Prints OK.
"""
import os
import sys

import torch
import torchvision

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "model"))
import reference_unet  # noqa: E402


def make(out_dir):
    torch.manual_seed(0)
    model = reference_unet.Unet("resnet34", 0, 3, 2)
    reference_unet.randomise(model, 7, 3)
    model.eval()
    x = torch.randn(1, 3, 100, 76, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        y = model(x)
    torch.save(model.state_dict(), os.path.join(out_dir, "r34.pt"))
    torch.save({"input": x, "output": y}, os.path.join(out_dir, "io.pt"))


def check(out_dir, smp_file, tv_file):
    original = torch.load(os.path.join(out_dir, "r34.pt"))
    exported = torch.load(smp_file)
    if set(exported) != set(original):
        sys.exit(f"keys differ: {sorted(set(exported) ^ set(original))[:10]}")
    for key, tensor in original.items():
        if exported[key].dtype != tensor.dtype or not torch.equal(exported[key], tensor):
            sys.exit(f"tensor {key} differs")
    model = reference_unet.Unet("resnet34", 0, 3, 2)
    model.load_state_dict(exported, strict=True)
    model.eval()
    io = torch.load(os.path.join(out_dir, "io.pt"))
    with torch.no_grad():
        y = model(io["input"])
    if not torch.equal(y, io["output"]):
        sys.exit(f"outputs differ by {(y - io['output']).abs().max().item()}")

    encoder = torch.load(tv_file)
    tv = torchvision.models.resnet34(weights=None)
    tv.fc = torch.nn.Identity()
    tv.load_state_dict(encoder, strict=True)
    for key, tensor in encoder.items():
        if not torch.equal(tensor, original["encoder." + key]):
            sys.exit(f"encoder tensor {key} differs")
    print("OK")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "make":
        make(sys.argv[2])
    elif len(sys.argv) == 5 and sys.argv[1] == "check":
        check(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        sys.exit(__doc__)
