"""segserve: the Python client of the segserve segmentation service.

    import segserve
    client = segserve.Client("localhost:50051", token="...", tls="ca.pem")
    mask = client.segment("smear.png", model="l1-pruned")   # numpy uint8 (H, W)

The gRPC messages and stubs of segserve.v1 are generated from proto/ when the package is
built (pip install ./client/python, or the cmake target python_client); they are in
segserve.v1 for the RPCs the client does not wrap (use them with client.channel).
"""
try:
    from .v1 import common_pb2 as _common_pb2  # noqa: F401  (generated at build time)
except ModuleNotFoundError as _e:  # running from the source tree without a build
    if not (_e.name or "").startswith(__name__ + ".v1"):
        raise
    raise ImportError(
        "segserve: the generated gRPC stubs (segserve.v1) are missing: install the package "
        "(pip install ./client/python) or build them (cmake --build build --target "
        "python_client) and put build/python on PYTHONPATH; see client/python/README.md") from _e

from .client import DEFAULT_ADDRESS, DEFAULT_MODEL, Client, new_request_id
from .errors import *  # noqa: F401,F403  (the typed exceptions, SegserveError and subclasses)
from .images import Dataset
from .datatypes import (AnalysisReport, Job, JobEvent, LayerRow, ModelVersion, Progress,
                        SegmentResult)

__version__ = "0.1.0"
