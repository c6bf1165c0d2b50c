#!/usr/bin/env python3
"""An Open Inference Protocol client written from proto/inference/open_inference.proto alone,
the way a pipeline would call segserve: stubs are generated at test time with Debian's protoc
and grpc_python_plugin (python3-grpcio, python3-protobuf; no tritonclient, no PyPI), every
RPC of inference.GRPCInferenceService is called against the real server, and its masks are
checked against segserve.v1 Segment's on the same images.

Run by tests/integration/oip_test.cc (OipTest.PythonClientFromTheProtoAlone), which starts
segserve with a 3-class model "plasmo-l1" (alias "l1-pruned"):
  /usr/bin/python3 oip_client_test.py --target HOST:PORT --proto_dir proto --work_dir DIR
"""
import argparse
import glob
import os
import struct
import subprocess
import sys
import unittest

ARGS = None
pb = None  # inference/open_inference_pb2
rpc = None  # inference/open_inference_pb2_grpc
v1 = None  # segserve/v1/segmentation_pb2 (reference masks only)
v1_rpc = None


def generate_stubs(proto_dir, work_dir):
    os.makedirs(work_dir, exist_ok=True)
    protos = ["inference/open_inference.proto"] + sorted(
        os.path.relpath(p, proto_dir) for p in glob.glob(os.path.join(proto_dir, "segserve/v1/*.proto")))
    subprocess.run(["protoc", "-I" + proto_dir, "--python_out=" + work_dir, "--grpc_out=" + work_dir,
                    "--plugin=protoc-gen-grpc=/usr/bin/grpc_python_plugin"] + protos, check=True)
    sys.path.insert(0, work_dir)


def image_bytes(height, width, channels, seed):
    """A deterministic HWC uint8 image with structure the model responds to."""
    out = bytearray(height * width * channels)
    i = 0
    for y in range(height):
        for x in range(width):
            for c in range(channels):
                out[i] = (x * (7 + seed) + y * 13 + c * 50 + (x * y + seed) % 31) % 256
                i += 1
    return bytes(out)


H, W, C = 96, 128, 3


class OpenInferenceProtocolTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        import grpc
        cls.grpc = grpc
        cls.channel = grpc.insecure_channel(ARGS.target)
        cls.stub = rpc.GRPCInferenceServiceStub(cls.channel)
        cls.images = [image_bytes(H, W, C, 1), image_bytes(H, W, C, 2)]

    @classmethod
    def tearDownClass(cls):
        cls.channel.close()

    def infer_request(self, images, datatype="UINT8", typed=False):
        request = pb.ModelInferRequest(model_name="l1-pruned", id="py-1")
        tensor = request.inputs.add(name="image", datatype=datatype, shape=[len(images), H, W, C])
        values = b"".join(images)
        if datatype == "FP32":
            floats = [b * (1.0 / 255.0) for b in values]
            if typed:
                tensor.contents.fp32_contents.extend(floats)
            else:
                request.raw_input_contents.append(struct.pack("<%df" % len(floats), *floats))
        elif typed:
            tensor.contents.uint_contents.extend(values)
        else:
            request.raw_input_contents.append(values)
        return request

    def segment(self, image):
        """segserve.v1 Segment's raw mask and probabilities of the same image (the reference)."""
        stub = v1_rpc.SegmentationStub(self.channel)
        request = v1.SegmentRequest()
        request.model.name = "plasmo-l1"
        request.image.raw.height, request.image.raw.width, request.image.raw.channels = H, W, C
        request.image.raw.dtype = common.DTYPE_UINT8
        request.image.raw.data = image
        request.options.mask_encoding = v1.MASK_RAW
        request.options.return_probabilities = True
        response = stub.Segment(request, timeout=120)
        data = response.probabilities.data
        return response.mask, struct.unpack("<%df" % (len(data) // 4), data)

    def assert_near(self, a, b, tolerance):
        self.assertEqual(len(a), len(b))
        self.assertLessEqual(max(abs(x - y) for x, y in zip(a, b)), tolerance)
        self.assertGreater(max(a) - min(a), 1e-3, "constant probabilities: a weak comparison")

    def test_server_live_ready_metadata(self):
        self.assertTrue(self.stub.ServerLive(pb.ServerLiveRequest(), timeout=30).live)
        self.assertTrue(self.stub.ServerReady(pb.ServerReadyRequest(), timeout=30).ready)
        metadata = self.stub.ServerMetadata(pb.ServerMetadataRequest(), timeout=30)
        self.assertEqual(metadata.name, "segserve")
        self.assertTrue(metadata.version)

    def test_model_ready(self):
        self.assertTrue(self.stub.ModelReady(pb.ModelReadyRequest(name="l1-pruned"), timeout=30).ready)
        self.assertTrue(
            self.stub.ModelReady(pb.ModelReadyRequest(name="plasmo-l1", version="1"), timeout=30).ready)
        with self.assertRaises(self.grpc.RpcError) as error:
            self.stub.ModelReady(pb.ModelReadyRequest(name="no-such-model"), timeout=30)
        self.assertEqual(error.exception.code(), self.grpc.StatusCode.NOT_FOUND)

    def test_model_metadata(self):
        metadata = self.stub.ModelMetadata(pb.ModelMetadataRequest(name="l1-pruned"), timeout=30)
        self.assertEqual(list(metadata.versions), ["1"])
        self.assertEqual([(t.name, t.datatype, list(t.shape)) for t in metadata.inputs],
                         [("image", "UINT8", [-1, -1, -1, 3])])
        self.assertEqual(metadata.inputs[0].parameters["layout"].string_param, "NHWC")
        self.assertEqual(metadata.inputs[0].parameters["mean"].string_param, "0.485,0.456,0.406")
        self.assertEqual([(t.name, t.datatype, list(t.shape)) for t in metadata.outputs],
                         [("mask", "UINT8", [-1, -1, -1]), ("probabilities", "FP32", [-1, 3, -1, -1])])

    def test_repository_index(self):
        for ready in (False, True):
            index = self.stub.RepositoryIndex(pb.RepositoryIndexRequest(ready=ready), timeout=30)
            self.assertEqual([(m.name, m.version, m.state) for m in index.models],
                             [("plasmo-l1", "1", "READY"), ("l1-pruned", "1", "READY")])

    def test_model_config(self):
        # What perf_analyzer and Triton's image_client read, by Triton's field names.
        config = self.stub.ModelConfig(pb.ModelConfigRequest(name="l1-pruned"), timeout=30).config
        self.assertEqual((config.name, config.platform, config.backend, config.max_batch_size),
                         ("l1-pruned", "segserve_unet", "segserve", 64))
        self.assertEqual([(t.name, t.data_type, t.format, list(t.dims)) for t in config.input],
                         [("image", pb.TYPE_UINT8, pb.ModelInput.FORMAT_NHWC, [-1, -1, 3])])
        self.assertEqual([(t.name, t.data_type, list(t.dims)) for t in config.output],
                         [("mask", pb.TYPE_UINT8, [-1, -1]), ("probabilities", pb.TYPE_FP32, [3, -1, -1])])
        self.assertEqual(config.WhichOneof("scheduling_choice"), "dynamic_batching")
        self.assertEqual(config.parameters["mean"].string_value, "0.485,0.456,0.406")
        with self.assertRaises(self.grpc.RpcError) as error:
            self.stub.ModelConfig(pb.ModelConfigRequest(name="no-such-model"), timeout=30)
        self.assertEqual(error.exception.code(), self.grpc.StatusCode.NOT_FOUND)
        self.assertIn("no-such-model", error.exception.details())

    def test_infer_raw_batch_of_two_matches_segment(self):
        request = self.infer_request(self.images)
        request.outputs.add(name="mask")
        request.outputs.add(name="probabilities")
        response = self.stub.ModelInfer(request, timeout=120)
        self.assertEqual(response.id, "py-1")
        self.assertEqual((response.model_name, response.model_version), ("plasmo-l1", "1"))
        self.assertEqual([(o.name, o.datatype, list(o.shape)) for o in response.outputs],
                         [("mask", "UINT8", [2, H, W]), ("probabilities", "FP32", [2, 3, H, W])])
        masks = response.raw_output_contents[0]
        self.assertEqual(len(masks), 2 * H * W)
        plane = 3 * H * W
        probs = struct.unpack("<%df" % (2 * plane), response.raw_output_contents[1])
        for i, image in enumerate(self.images):
            mask, reference = self.segment(image)
            self.assertEqual(masks[i * H * W:(i + 1) * H * W], mask, "image %d" % i)
            # A batch may be computed in another order than single images: not bit-exact.
            self.assert_near(probs[i * plane:(i + 1) * plane], reference, 1e-4)

    def test_infer_typed_contents_match_raw(self):
        raw = self.stub.ModelInfer(self.infer_request(self.images[:1]), timeout=120)
        for datatype, typed in (("UINT8", True), ("FP32", True), ("FP32", False)):
            other = self.stub.ModelInfer(self.infer_request(self.images[:1], datatype, typed), timeout=120)
            self.assertEqual(other.raw_output_contents[0], raw.raw_output_contents[0],
                             "%s typed=%s" % (datatype, typed))

    def test_infer_probabilities_when_requested(self):
        request = self.infer_request(self.images[:1])
        request.outputs.add(name="mask")
        request.outputs.add(name="probabilities")
        response = self.stub.ModelInfer(request, timeout=120)
        self.assertEqual([(o.name, list(o.shape)) for o in response.outputs],
                         [("mask", [1, H, W]), ("probabilities", [1, 3, H, W])])
        probs = struct.unpack("<%df" % (3 * H * W), response.raw_output_contents[1])
        for p in range(0, H * W, 97):
            self.assertAlmostEqual(probs[p] + probs[H * W + p] + probs[2 * H * W + p], 1.0, places=4)

    def test_infer_errors_name_the_tensor(self):
        request = self.infer_request(self.images[:1])
        request.inputs[0].datatype = "FP16"
        with self.assertRaises(self.grpc.RpcError) as error:
            self.stub.ModelInfer(request, timeout=30)
        self.assertEqual(error.exception.code(), self.grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("image", error.exception.details())
        request = self.infer_request(self.images[:1])
        request.raw_input_contents[0] = request.raw_input_contents[0][:-1]
        with self.assertRaises(self.grpc.RpcError) as error:
            self.stub.ModelInfer(request, timeout=30)
        self.assertEqual(error.exception.code(), self.grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("image: raw_input_contents[0]", error.exception.details())

    def test_the_docs_example_runs(self):
        """docs/oip.md's Python example, run as written but for address, model and stub dir."""
        doc = open(os.path.join(ARGS.proto_dir, "..", "docs", "oip.md")).read()
        code = doc.split("```python\n", 1)[1].split("```", 1)[0]
        for old, new in (("localhost:50051", ARGS.target), ('"baseline"', '"l1-pruned"'),
                         ("/tmp/oip", ARGS.work_dir)):
            self.assertIn(old, code)
            code = code.replace(old, new)
        scope = {}
        exec(compile(code, "docs/oip.md", "exec"), scope)
        self.assertEqual(scope["masks"].shape, (2, 256, 256))
        self.assertEqual(scope["response"].id, "job-7")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--target", required=True)
    parser.add_argument("--proto_dir", required=True)
    parser.add_argument("--work_dir", required=True)
    ARGS = parser.parse_args()
    generate_stubs(ARGS.proto_dir, ARGS.work_dir)
    from inference import open_inference_pb2 as pb
    from inference import open_inference_pb2_grpc as rpc
    from segserve.v1 import common_pb2 as common
    from segserve.v1 import segmentation_pb2 as v1
    from segserve.v1 import segmentation_pb2_grpc as v1_rpc
    result = unittest.main(argv=[sys.argv[0], "-v"], exit=False).result
    sys.exit(0 if result.wasSuccessful() else 1)
