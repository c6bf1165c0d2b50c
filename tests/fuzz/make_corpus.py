#!/usr/bin/env python3
"""File: tests/fuzz/make_corpus.py — writes the seed corpus under tests/fuzz/corpus/<target>/.

Run from the repository root: python3 tests/fuzz/make_corpus.py. Deterministic; needs only
the standard library and protoc (for the request seeds). Seeds are tiny valid inputs plus a
few near-misses; libFuzzer grows its own corpus from them in a temp copy (scripts/fuzz.sh).
"""
import io
import json
import os
import pickle
import struct
import subprocess
import zipfile
import zlib
import hashlib

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CORPUS = os.path.join(ROOT, "tests", "fuzz", "corpus")
SEEDS = os.path.join(ROOT, "tests", "fuzz", "seed_sources")


def write(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# ---- images -------------------------------------------------------------------------------
def png(width, height, color_type, bit_depth, raw_rows, palette=None):
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(
            ">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
    out = b"\x89PNG\r\n\x1a\n"
    out += chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0))
    if palette is not None:
        out += chunk(b"PLTE", palette)
    out += chunk(b"IDAT", zlib.compress(b"".join(b"\x00" + r for r in raw_rows)))
    return out + chunk(b"IEND", b"")


def tiff(width, height, spp, bps, pixels):
    """Little-endian baseline TIFF, one uncompressed strip."""
    entries = [(256, 3, 1, width), (257, 3, 1, height), (258, 3, 1, bps), (259, 3, 1, 1),
               (262, 3, 1, 2 if spp >= 3 else 1), (273, 4, 1, 0), (277, 3, 1, spp),
               (278, 3, 1, height), (279, 4, 1, len(pixels))]
    ifd_offset = 8
    data_offset = ifd_offset + 2 + 12 * len(entries) + 4
    out = b"II*\x00" + struct.pack("<I", ifd_offset) + struct.pack("<H", len(entries))
    for tag, typ, count, value in entries:
        if tag == 273:
            value = data_offset
        out += struct.pack("<HHI", tag, typ, count)
        out += struct.pack("<HH", value, 0) if typ == 3 else struct.pack("<I", value)
    return out + struct.pack("<I", 0) + pixels


def images():
    rows8 = [bytes((x * 16 + y) & 0xFF for x in range(4)) for y in range(4)]
    write("image", "png_gray8_4x4.png", png(4, 4, 0, 8, rows8))
    write("image", "png_rgb8_4x4.png", png(4, 4, 2, 8, [r * 3 for r in rows8]))
    write("image", "png_rgba8_4x4.png", png(4, 4, 6, 8, [r * 4 for r in rows8]))
    write("image", "png_gray16_4x4.png", png(4, 4, 0, 16, [r * 2 for r in rows8]))
    write("image", "png_graya8_4x4.png", png(4, 4, 4, 8, [r * 2 for r in rows8]))
    write("image", "png_palette_4x4.png",
          png(4, 4, 3, 8, [bytes(x % 2 for x in range(4))] * 4, palette=b"\x00\x00\x00\xff\x00\x00"))
    write("image", "png_gray1_8x2.png", png(8, 2, 0, 1, [b"\xa5", b"\x5a"]))
    # A decompression bomb's header: 65536 x 65536 claimed, a few bytes of data.
    write("image", "png_bomb_header.png", png(65536, 65536, 0, 8, [b"\x00"]))
    write("image", "tiff_rgb8_4x4.tif", tiff(4, 4, 3, 8, bytes(range(48))))
    write("image", "tiff_gray16_4x4.tif", tiff(4, 4, 1, 16, bytes(range(32))))
    # Python's own test images (PSF licence): a 16x16 baseline JFIF and an RGB TIFF.
    for name in ("python.jpg", "python.tiff"):
        with open(os.path.join(SEEDS, name), "rb") as f:
            write("image", name, f.read())


# ---- raw tensors (FuzzedDataProvider layout, see raw_tensor_fuzzer.cc) ---------------------
def raw_tensors():
    # FuzzedDataProvider reads integers from the *end* of the data, so seeds are mostly
    # arbitrary bytes; a few lengths give the fuzzer a start.
    for i, n in enumerate([4, 16, 48, 64, 200]):
        write("raw_tensor", "seed_%d.bin" % i, bytes([3 | (4 * (i % 2))]) + bytes(
            (j * 37 + i) & 0xFF for j in range(n)))


# ---- requests (protoc --encode from text format) -------------------------------------------
def encode(message, proto, text):
    return subprocess.run(
        ["protoc", "--encode=" + message, "-I", os.path.join(ROOT, "proto"), proto],
        input=text.encode(), check=True, capture_output=True).stdout


def requests():
    seg = "segserve/v1/segmentation.proto"
    gray = png(4, 4, 0, 8, [b"\x01\x02\x03\x04"] * 4)
    esc = "".join("\\x%02x" % b for b in gray)
    write("request", "segment_encoded.pb", encode(
        "segserve.v1.SegmentRequest", seg,
        'request_id: "r1" model { name: "m" } image { encoded: "%s" } '
        'options { mask_encoding: MASK_PNG tile_size: 256 }' % esc))
    write("request", "segment_raw_u8.pb", encode(
        "segserve.v1.SegmentRequest", seg,
        'model { name: "m" } image { raw { height: 2 width: 2 channels: 1 dtype: DTYPE_UINT8 '
        'data: "\\x01\\x02\\x03\\x04" } } options { mask_encoding: MASK_RAW }'))
    write("request", "segment_raw_f32.pb", encode(
        "segserve.v1.SegmentRequest", seg,
        'model { name: "m" } image { raw { height: 1 width: 1 channels: 3 dtype: DTYPE_FLOAT32 '
        'data: "\\x00\\x00\\x80\\x3f\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x3f" } }'))
    write("request", "segment_raw_overflow.pb", encode(
        "segserve.v1.SegmentRequest", seg,
        'image { raw { height: 2147483647 width: 2147483647 channels: 4 dtype: DTYPE_UINT16 } }'))
    tr = "segserve/v1/training.proto"
    write("request", "train_minimal.pb", encode("segserve.v1.TrainSpec", tr, 'dataset: "tiny"'))
    write("request", "train_sweep.pb", encode(
        "segserve.v1.TrainSpec", tr,
        'dataset: "tiny" encoders: ENCODER_RESNET18 encoders: ENCODER_RESNET34 '
        'prune_levels: 0 prune_levels: 4 epochs: 2 batch_size: 4 learning_rate: 0.01 '
        'loss { cross_entropy: 1 dice: 1 } augmentation { crop_size: 64 } seed: 7 '
        'pretrained_encoder: "pretrained/r18.pt" early_stopping_patience: 3 device: "cpu" '
        'test_split: "test" cross_domain { label: "x" dataset { name: "other" split: "val" } } '
        'model_name: "sweep" priority: 5 max_steps_per_epoch: 2'))
    write("request", "train_single_aliases.pb", encode(
        "segserve.v1.TrainSpec", tr,
        'dataset: "tiny" encoders: ENCODER_RESNET34 prune_levels: 1 set_aliases: "prod" '
        'set_aliases: "staging" model_name: "m1"'))
    write("request", "train_escape.pb", encode(
        "segserve.v1.TrainSpec", tr,
        'dataset: "../tiny" pretrained_encoder: "/etc/passwd" model_name: "../x"'))
    write("request", "model_config.pb", encode(
        "segserve.v1.ModelConfig", "segserve/v1/models.proto",
        'encoder: ENCODER_RESNET18 skip_prune_level: 2 in_channels: 1 classes: 3 '
        'mean: 0.25 std: 0.125'))


# ---- data-set manifests --------------------------------------------------------------------
def datasets():
    def j(name, obj):
        write("dataset", name, json.dumps(obj, indent=1).encode())
    j("native_lists.json", {"name": "tiny", "channels": 1,
                            "classes": [{"id": 0, "name": "bg"}, {"id": 1, "name": "fg"}],
                            "domain": "scanner-a", "image_domains": {"a": "scanner-b"},
                            "split_domains": {"test": "scanner-c"},
                            "splits": {"train": ["a"], "val": ["b"], "test": ["c"]}})
    j("native_ratios.json", {"channels": 1, "classes": [{"id": 0, "name": "bg"},
                                                        {"id": 255, "name": "x"}],
                             "splits": {"ratios": {"train": 0.5, "val": 0.25, "test": 0.25},
                                        "seed": 3}})
    j("native_bad_split.json", {"channels": 1, "classes": [{"id": 0, "name": "bg"}],
                                "splits": {"train": ["a", "zz"], "val": ["a"]}})
    j("nnunet_v2.json", {"name": "Dataset001", "channel_names": {"0": "MR"},
                         "labels": {"background": 0, "tumour": 1}, "numTraining": 3,
                         "file_ending": ".png"})
    j("nnunet_v1.json", {"name": "Task01", "modality": {"0": "CT"},
                         "labels": {"0": "background", "1": "organ"}})
    j("nnunet_nifti.json", {"name": "Dataset002", "channel_names": {"0": "T2"},
                            "labels": {"background": 0, "organ": 1, "lesion": 2},
                            "file_ending": ".nii.gz",
                            "nifti": {"axis": 1, "normalization": "zscore"}})
    write("dataset", "not_object.json", b"[1, 2, 3]")
    write("dataset", "truncated.json", b'{"channels": 1, "classes": [{"id": 0, "na')


# ---- checkpoints and state dicts (first byte = mode, see checkpoint_fuzzer.cc) -------------
def checkpoint_bytes(header, payload=b""):
    text = json.dumps(header, separators=(",", ":")).encode()
    return b"SEGCKPT1" + struct.pack("<Q", len(text)) + text + payload


class _Global:
    """Pickles as GLOBAL module.name without importing anything."""
    def __init__(self, module, name):
        self.module, self.name = module, name


class _Reduce:
    def __init__(self, func, args):
        self.func, self.args = func, args

    def __reduce__(self):
        return (self.func, self.args)


def state_dict_zip(tensors):
    """A torch.save-format zip of an OrderedDict of float32 tensors, built without torch."""
    import collections
    import copyreg
    import types

    # Fake modules so pickle writes GLOBAL torch._utils _rebuild_tensor_v2 / torch FloatStorage.
    torch_mod = types.ModuleType("torch")
    utils_mod = types.ModuleType("torch._utils")

    def _rebuild_tensor_v2(*a):
        pass
    _rebuild_tensor_v2.__module__ = "torch._utils"
    _rebuild_tensor_v2.__qualname__ = "_rebuild_tensor_v2"
    utils_mod._rebuild_tensor_v2 = _rebuild_tensor_v2

    class FloatStorage:
        pass
    FloatStorage.__module__ = "torch"
    FloatStorage.__qualname__ = "FloatStorage"
    torch_mod.FloatStorage = FloatStorage
    torch_mod._utils = utils_mod
    import sys
    saved = {k: sys.modules.get(k) for k in ("torch", "torch._utils")}
    sys.modules["torch"], sys.modules["torch._utils"] = torch_mod, utils_mod
    try:
        class Storage:
            def __init__(self, key, numel):
                self.key, self.numel = key, numel

        class P(pickle.Pickler):
            def persistent_id(self, obj):
                if isinstance(obj, Storage):
                    return ("storage", FloatStorage, obj.key, "cpu", obj.numel)
                return None

        od = collections.OrderedDict()
        records = {}
        for i, (name, shape, values) in enumerate(tensors):
            key = str(i)
            records[key] = struct.pack("<%df" % len(values), *values)
            stride, acc = [], 1
            for d in reversed(shape):
                stride.insert(0, acc)
                acc *= d
            od[name] = _Reduce(_rebuild_tensor_v2,
                               (Storage(key, len(values)), 0, tuple(shape), tuple(stride), False,
                                collections.OrderedDict()))
        buf = io.BytesIO()
        P(buf, protocol=2).dump(od)
        pkl = buf.getvalue()
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", pkl)
        for key, data in records.items():
            z.writestr("archive/data/" + key, data)
        z.writestr("archive/version", "3\n")
    return out.getvalue()


def checkpoints():
    config = {"encoder": "resnet18", "skip_prune_level": 4, "in_channels": 1, "classes": 2}
    # mode 1 (checksum appended by the harness): header-only, a few small tensors.
    write("checkpoint", "header_only_fixsum.bin", b"\x01" + checkpoint_bytes(
        {"format_version": 1, "config": config, "metadata": {}, "payload_bytes": 0,
         "tensors": []}))
    payload = struct.pack("<q", 7) + struct.pack("<4f", 1, 2, 3, 4)
    write("checkpoint", "two_tensors_fixsum.bin", b"\x01" + checkpoint_bytes(
        {"format_version": 1, "config": config, "metadata": {"k": [1, 2]},
         "payload_bytes": len(payload),
         "tensors": [{"name": "encoder.bn1.num_batches_tracked", "dtype": "int64", "shape": [],
                      "offset": 0, "nbytes": 8},
                     {"name": "segmentation_head.0.bias", "dtype": "float32", "shape": [2, 2],
                      "offset": 8, "nbytes": 16}]}, payload))
    # mode 0 (as-is): a real ResNet18 checkpoint's header + 4 KiB of payload (truncated), and
    # a complete tiny file with its true checksum.
    with open(os.path.join(SEEDS, "resnet18_checkpoint_head.bin"), "rb") as f:
        head = f.read()
    write("checkpoint", "real_header_truncated.bin", b"\x00" + head)
    write("checkpoint", "real_header_fixsum.bin", b"\x01" + head)
    body = checkpoint_bytes({"format_version": 1, "config": config, "metadata": None,
                             "payload_bytes": 0, "tensors": []})
    write("checkpoint", "header_only_checksummed.bin",
          b"\x00" + body + b"sha256:" + hashlib.sha256(body).hexdigest().encode())
    # mode 2: state dicts.
    write("checkpoint", "state_dict_two.bin", b"\x02" + state_dict_zip(
        [("conv1.weight", [2, 1, 1, 1], [0.5, -0.5]), ("fc.bias", [3], [1.0, 2.0, 3.0])]))
    write("checkpoint", "state_dict_empty.bin", b"\x02" + state_dict_zip([]))


# ---- NIfTI volumes -------------------------------------------------------------------------
def nifti1(dims, datatype, bitpix, data, endian="<", scl=(1.0, 0.0), dim0=None):
    d = [dim0 if dim0 is not None else len(dims)] + list(dims) + [1] * (7 - len(dims))
    pixdim = [1.0, 1.0, 1.2, 3.0, 0, 0, 0, 0]
    srow = [-1.0, 0, 0, 10.0, 0, 1.2, 0, -5.0, 0, 0, 3.0, 2.0]
    header = struct.pack(
        endian + "i10s18sihcc8h3fhhhh8ffffhcc4f2i80s24shh6f12f16s4s",
        348, b"", b"", 0, 0, b"r", b"\0", *d, 0, 0, 0, 0, datatype, bitpix, 0, *pixdim, 352.0,
        scl[0], scl[1], 0, b"\0", b"\x02", 0, 0, 0, 0, 0, 0, b"fuzz seed", b"", 1, 1,
        0, 0, 1.0, 10.0, -5.0, 2.0, *srow, b"", b"n+1\0")
    return header + b"\0" * 4 + data


def nifti2(dims, datatype, bitpix, data):
    d = [len(dims)] + list(dims) + [1] * (7 - len(dims))
    header = struct.pack(
        "<i8shh8q3d8dq6dqq80s24sii6d12diii16sc15s",
        540, b"n+2\0\r\n\x1a\n", datatype, bitpix, *d, 0, 0, 0,
        1.0, 0.8, 0.8, 2.0, 0, 0, 0, 0, 544, 1.0, 0.0, 0, 0, 0, 0, 0, 0, b"n2 seed", b"",
        1, 0, 0.0, 0.0, 0.0, 1.0, 2.0, 3.0, *([0.0] * 12), 0, 2, 0, b"", b"\0", b"")
    return header + b"\0" * 4 + data


def niftis():
    f32 = struct.pack("<24f", *[float(i) for i in range(24)])
    write("nifti", "n1_f32_4x3x2.nii", nifti1((4, 3, 2), 16, 32, f32))
    write("nifti", "n1_f32_4x3x2.nii.gz", gzip_bytes(nifti1((4, 3, 2), 16, 32, f32)))
    write("nifti", "n1_be_i16_scaled.nii",
          nifti1((3, 2, 2), 4, 16, struct.pack(">12h", *range(12)), ">", (2.0, -1.0)))
    write("nifti", "n1_u8_labels_2d.nii", nifti1((4, 4), 2, 8, bytes([0, 1, 2, 1] * 4)))
    write("nifti", "n2_u8_3x3x3.nii", nifti2((3, 3, 3), 2, 8, bytes(range(27))))
    write("nifti", "n2_f64_2x2x2.nii.gz",
          gzip_bytes(nifti2((2, 2, 2), 64, 64, struct.pack("<8d", *[0.5 * i for i in range(8)]))))
    write("nifti", "n1_4d_near_miss.nii",
          nifti1((2, 2, 1, 2), 2, 8, bytes(8)))
    write("nifti", "n1_truncated.nii.gz", gzip_bytes(nifti1((4, 3, 2), 16, 32, f32))[:-30])


def gzip_bytes(data):
    c = zlib.compressobj(6, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    return c.compress(data) + c.flush()


if __name__ == "__main__":
    images()
    raw_tensors()
    requests()
    datasets()
    checkpoints()
    niftis()
