"""Images in and masks out: numpy arrays, file paths and encoded bytes to segserve.v1.Image,
and raw masks and probability planes back to numpy."""
import os
from dataclasses import dataclass
from typing import Optional

import numpy

from .v1 import common_pb2

# numpy dtype -> (wire dtype, little-endian numpy dtype). float64 is sent as float32.
_DTYPES = {
    numpy.dtype(numpy.uint8): (common_pb2.DTYPE_UINT8, "u1"),
    numpy.dtype(numpy.uint16): (common_pb2.DTYPE_UINT16, "<u2"),
    numpy.dtype(numpy.float32): (common_pb2.DTYPE_FLOAT32, "<f4"),
    numpy.dtype(numpy.float64): (common_pb2.DTYPE_FLOAT32, "<f4"),
}


def to_image(image, label: str = ""):
    """A segserve.v1.Image from:
    - a numpy array (height, width) or (height, width, channels), channels 1, 3 or 4,
      dtype uint8 (0..255), uint16 (0..65535) or float32/float64 (already in [0, 1]);
    - a path (str or os.PathLike) of a PNG, JPEG or TIFF file (sent encoded; the server
      decodes it);
    - bytes: the contents of such a file."""
    message = common_pb2.Image()
    if isinstance(image, (str, os.PathLike)):
        with open(image, "rb") as f:
            message.encoded = f.read()
        message.label = label or os.path.basename(os.fspath(image))[-256:]
        return message
    if isinstance(image, (bytes, bytearray, memoryview)):
        message.encoded = bytes(image)
        if label:
            message.label = label
        return message
    array = numpy.asarray(image)
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3:
        raise ValueError("image: expected an array (height, width) or (height, width, channels), "
                         "got shape %s" % (array.shape,))
    if array.dtype not in _DTYPES:
        raise ValueError("image: dtype %s is not one of uint8, uint16, float32, float64"
                         % array.dtype)
    wire, little = _DTYPES[array.dtype]
    raw = message.raw
    raw.height, raw.width, raw.channels = array.shape
    raw.dtype = wire
    raw.data = numpy.ascontiguousarray(array, dtype=little).tobytes()
    if label:
        message.label = label
    return message


def mask_from_response(response) -> numpy.ndarray:
    """The raw mask of a SegmentResponse (asked for with MASK_RAW) as uint8 (height, width)."""
    expected = response.height * response.width
    if len(response.mask) != expected:
        raise ValueError("mask: %d bytes for %dx%d" % (len(response.mask), response.height,
                                                       response.width))
    return numpy.frombuffer(response.mask, dtype=numpy.uint8).reshape(
        response.height, response.width).copy()


def probabilities_from_response(response) -> Optional[numpy.ndarray]:
    p = response.probabilities
    if not p.data:
        return None
    return numpy.frombuffer(p.data, dtype="<f4").astype(numpy.float32).reshape(
        p.classes, p.height, p.width)


@dataclass(frozen=True)
class Dataset:
    """A server-side data set (under the server's --data_dir/datasets/) for analyze:
    split "train", "val", "test" or "" (all); an optional shift applied on the fly
    (kind "brightness", "contrast" or "saturation", level 1..5); at most `limit` images
    (0 = all)."""
    name: str
    split: str = ""
    shift: str = ""
    level: int = 0
    limit: int = 0


def to_image_set(images, image_set):
    """Fills a segserve.v1.ImageSet from a data-set name, a Dataset, or an iterable of images."""
    if isinstance(images, str):
        images = Dataset(images)
    if isinstance(images, Dataset):
        image_set.dataset.name = images.name
        image_set.dataset.split = images.split
        if images.shift:
            kind = "KIND_" + images.shift.upper()
            image_set.dataset.shift.kind = common_pb2.Shift.Kind.Value(kind)
            image_set.dataset.shift.level = images.level
        image_set.limit = images.limit
        return image_set
    for image in images:
        image_set.images.append(to_image(image))
    return image_set
