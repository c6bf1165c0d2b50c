#!/usr/bin/env python3
"""The segserve Python client (client/python) against the real server: segment (masks equal
segserve.v1 Segment's from the C++ client on the same images), segment_many over one
stream, a tiny data-set and training job submitted and watched, analyze, a model exported
and imported back (streamed; the copy segments alike and exports the same bytes), auth failures and
an exceeded deadline as typed exceptions with code and request id, the README example
(identical to client/python/examples/segment.py) run as written, and `pip install` of the
package offline into a venv.

Run by tests/integration/python_client_test.cc (EveryCallAgainstTheServer runs the class
PythonClientTest, TlsWithACaFile the class TlsTest against a TLS server), which starts
segserve with tokens and a 3-class model "plasmo-l1" (aliases baseline and l1-pruned) and
writes the test images and their reference masks into WORK_DIR:
  PYTHONPATH=build/python /usr/bin/python3 python_client_test.py --target HOST:PORT \
    --source_dir SRC --work_dir WORK_DIR --trainer_token T --viewer_token V --admin_token A \
    [--tls_ca CA.pem] [PythonClientTest|TlsTest]
"""
import argparse
import dataclasses
import os
import subprocess
import sys
import tempfile
import unittest

import grpc
import numpy

import segserve

ARGS = None


def load_reference(index):
    """Test image `index` as written by the C++ test: raw HWC bytes, PNG, raw mask."""
    base = os.path.join(ARGS.work_dir, "image%d" % index)
    with open(base + ".shape") as f:
        height, width, channels = (int(v) for v in f.read().split())
    image = numpy.fromfile(base + ".rgb", dtype=numpy.uint8).reshape(height, width, channels)
    mask = numpy.fromfile(base + ".mask", dtype=numpy.uint8).reshape(height, width)
    return image, base + ".png", mask


class PythonClientTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.client = segserve.Client(ARGS.target, token=ARGS.trainer_token, timeout=120)
        cls.references = [load_reference(i) for i in range(2)]

    @classmethod
    def tearDownClass(cls):
        cls.client.close()

    def test_segment_array_and_path_give_segments_mask(self):
        for image, png, reference in self.references:
            self.assertGreater(len(numpy.unique(reference)), 1, "a constant mask: weak test")
            mask = self.client.segment(image, model="l1-pruned")
            self.assertEqual(mask.dtype, numpy.uint8)
            numpy.testing.assert_array_equal(mask, reference)
            numpy.testing.assert_array_equal(self.client.segment(png, model="plasmo-l1"),
                                             reference)
        image, _, reference = self.references[0]
        result = self.client.segment_result(image, model="baseline", probabilities=True,
                                            request_id="py-segment-1")
        self.assertEqual((result.model_name, result.model_version), ("plasmo-l1", 1))
        self.assertEqual(result.request_id, "py-segment-1")
        self.assertEqual(result.probabilities.shape, (3,) + reference.shape)
        numpy.testing.assert_array_equal(result.probabilities.argmax(axis=0), reference)
        self.assertAlmostEqual(sum(result.class_fractions), 1.0, places=5)
        # float input in [0, 1], scaled as the server scales uint8: the same mask (but for
        # pixels where rounding in another normalisation path tips a near tie)
        scaled = image.astype(numpy.float32) * numpy.float32(1.0 / 255.0)
        same = self.client.segment(scaled, model="plasmo-l1") == reference
        self.assertGreaterEqual(same.mean(), 0.999)

    def test_segment_many_streams_in_input_order(self):
        inputs, expected = [], []
        for i in range(7):
            image, png, reference = self.references[i % 2]
            inputs.append(png if i % 3 == 0 else image)
            expected.append(reference)
        masks = list(self.client.segment_many(iter(inputs), model="l1-pruned", max_in_flight=2))
        self.assertEqual(len(masks), 7)
        for i, (mask, reference) in enumerate(zip(masks, expected)):
            numpy.testing.assert_array_equal(mask, reference, "image %d" % i)
        # One bad image: the masks before it arrive, then its typed error with its index.
        bad = numpy.zeros((8, 8, 2), numpy.uint8)  # 2 channels: refused by the server
        got = []
        with self.assertRaises(segserve.InvalidArgumentError) as error:
            for mask in self.client.segment_many([inputs[1], bad, inputs[1]], model="l1-pruned"):
                got.append(mask)
        self.assertEqual(len(got), 1)
        self.assertEqual(error.exception.index, 1)
        self.assertEqual(error.exception.code, grpc.StatusCode.INVALID_ARGUMENT)
        self.assertTrue(error.exception.request_id)
        # Stopping early cancels the stream; the client keeps working.
        for _ in self.client.segment_many([inputs[1]] * 50, model="l1-pruned", max_in_flight=3):
            break
        numpy.testing.assert_array_equal(self.client.segment(inputs[1], model="l1-pruned"),
                                         expected[1])

    def test_submit_and_watch_a_tiny_training_job(self):
        data = self.client.generate_dataset("py-smears", n=16, size=64, seed=3)
        self.assertEqual((data.kind, data.state), ("SYNTH", "QUEUED"))
        self.assertEqual(self.client.wait(data, timeout=300).state, "SUCCEEDED")
        job = self.client.submit_train("py-smears", encoders="resnet18", prune_levels=1,
                                       epochs=1, batch_size=4, learning_rate=3e-3,
                                       max_steps_per_epoch=2, model_name="py-tiny")
        self.assertEqual((job.kind, job.state), ("TRAIN", "QUEUED"))
        events = list(self.client.watch(job, timeout=600))
        self.assertTrue(events[-1].terminal)
        self.assertEqual([e.terminal for e in events].count(True), 1)
        done = events[-1].job
        self.assertEqual(done.state, "SUCCEEDED", done.reason)
        self.assertTrue(done.done)
        self.assertEqual((done.model_name, done.model_version), ("py-tiny", 1))
        self.assertIn("val_iou", done.metrics)
        self.assertEqual(events[-1].progress.fraction, 1.0)
        self.assertIsInstance(events[-1].progress, segserve.Progress)
        # A finished job yields one terminal event; get_job agrees.
        again = list(self.client.watch(job.job_id))
        self.assertEqual(len(again), 1)
        self.assertEqual(self.client.get_job(job).state, "SUCCEEDED")
        image, _, reference = self.references[0]
        self.assertEqual(self.client.segment(image, model="py-tiny").shape, reference.shape)
        with self.assertRaises(ValueError):
            self.client.submit_train("py-smears", no_such_field=1)

    def test_analyze_returns_plain_rows(self):
        source = [self.references[i % 2][0] for i in range(4)]
        target = [numpy.clip(image.astype(numpy.int32) + 60, 0, 255).astype(numpy.uint8)
                  for image in source]
        report = self.client.analyze("plasmo-l1", source, target, bins=8)
        self.assertEqual((report.source_images, report.target_images, report.bins), (4, 4, 8))
        layers = [row.layer for row in report.rows]
        self.assertIn("encoder.stem", layers)
        self.assertIn("decoder.block0", layers)
        row = report.layer("encoder.stem")
        self.assertTrue(dataclasses.is_dataclass(row))
        self.assertEqual(row.model_name, "plasmo-l1")
        self.assertEqual(len(row.per_channel), row.channels)
        for r in report.rows:
            self.assertTrue(0 <= r.mean <= r.max <= 1, r)
        self.assertEqual(set(dataclasses.asdict(row)), {
            "model_name", "model_version", "layer", "channels", "mean", "median", "max",
            "null_mean", "per_channel"})

    def test_export_and_import_a_model(self):
        with tempfile.TemporaryDirectory() as tmp:
            first = os.path.join(tmp, "plasmo.pt")
            exported = self.client.export_model("baseline", first)
            self.assertEqual((exported.name, exported.version, exported.state),
                             ("plasmo-l1", 1, "LOADED"))
            self.assertFalse(os.path.exists(first + ".part"))
            options = dict(encoder="resnet18", prune_level=1, classes=3)
            with self.assertRaises(segserve.PermissionDeniedError):  # import needs admin
                self.client.import_model(first, "py-copy", **options)
            with segserve.Client(ARGS.target, token=ARGS.admin_token, timeout=120) as admin:
                imported = admin.import_model(first, "py-copy", load=True, chunk_bytes=100000,
                                              **options)
            self.assertEqual((imported.name, imported.version, imported.state),
                             ("py-copy", 1, "LOADED"))
            self.assertEqual((imported.encoder, imported.skip_prune_level, imported.classes),
                             ("RESNET18", 1, 3))
            for image, _, reference in self.references:
                numpy.testing.assert_array_equal(self.client.segment(image, model="py-copy"),
                                                 reference)
            again = os.path.join(tmp, "copy.pt")
            self.client.export_model("py-copy:1", again)
            with open(first, "rb") as a, open(again, "rb") as b:
                self.assertEqual(a.read(), b.read())
            missing = os.path.join(tmp, "missing.pt")
            with self.assertRaises(segserve.NotFoundError):
                self.client.export_model("no-such-model", missing)
            self.assertEqual(sorted(os.listdir(tmp)), ["copy.pt", "plasmo.pt"])

    def test_auth_failures_raise_typed_errors(self):
        image = self.references[0][0]
        for token in ("", "not-a-token"):
            with segserve.Client(ARGS.target, token=token) as anonymous:
                with self.assertRaises(segserve.UnauthenticatedError) as error:
                    anonymous.segment(image, request_id="py-auth-1")
            self.assertEqual(error.exception.code, grpc.StatusCode.UNAUTHENTICATED)
            self.assertEqual(error.exception.request_id, "py-auth-1")
            self.assertIn("authorization", error.exception.message)
            self.assertIsInstance(error.exception, segserve.SegserveError)
            self.assertIn("UNAUTHENTICATED", str(error.exception))
        with segserve.Client(ARGS.target, token=ARGS.viewer_token) as viewer:
            with self.assertRaises(segserve.PermissionDeniedError) as error:
                viewer.segment(image)
            self.assertEqual(error.exception.code, grpc.StatusCode.PERMISSION_DENIED)
            self.assertEqual(len(error.exception.request_id), 16)  # the client's own id
            with self.assertRaises(segserve.PermissionDeniedError):
                viewer.submit_train("py-smears", epochs=1)
            with self.assertRaises(segserve.UnauthenticatedError):
                list(segserve.Client(ARGS.target, token="").segment_many([image]))

    def test_deadline_exceeded_is_a_typed_timeout(self):
        big = numpy.random.default_rng(1).integers(0, 256, (1024, 1024, 3), numpy.uint8)
        with self.assertRaises(segserve.DeadlineExceededError) as error:
            self.client.segment(big, model="l1-pruned", timeout=0.001)
        self.assertEqual(error.exception.code, grpc.StatusCode.DEADLINE_EXCEEDED)
        self.assertIsInstance(error.exception, TimeoutError)
        self.assertTrue(error.exception.request_id)
        image, _, reference = self.references[0]
        numpy.testing.assert_array_equal(self.client.segment(image, model="l1-pruned"),
                                         reference)

    def test_unknown_model_is_not_found(self):
        with self.assertRaises(segserve.NotFoundError) as error:
            self.client.segment(self.references[0][0], model="no-such-model")
        self.assertIn("no-such-model", error.exception.message)

    def example_env(self, **extra):
        env = dict(os.environ, SEGSERVE_ADDR=ARGS.target, SEGSERVE_TOKEN=ARGS.trainer_token)
        env.update(extra)
        return env

    def test_readme_snippet_is_the_example(self):
        with open(os.path.join(ARGS.source_dir, "README.md")) as f:
            readme = f.read()
        snippet = readme.split("```python\n", 1)[1].split("```", 1)[0]
        with open(os.path.join(ARGS.source_dir, "client/python/examples/segment.py")) as f:
            self.assertEqual(snippet, f.read())
        self.assertEqual(len(snippet.splitlines()), 5)

    def test_example_runs(self):
        run = subprocess.run([sys.executable, os.path.join(
            ARGS.source_dir, "client/python/examples/segment.py")], env=self.example_env(),
            capture_output=True, text=True, timeout=120)
        self.assertEqual(run.returncode, 0, run.stderr)
        self.assertTrue(run.stdout.startswith("(256, 256) ["), run.stdout)

    def test_pip_install_offline_into_a_venv(self):
        """`pip install ./client/python` with nothing from an index, then the example
        with that venv's python (no PYTHONPATH: the installed package). The venv has no pip
        of its own (creating one with pip takes ~10 s): Debian's pip (python3-pip), seen
        through --system-site-packages, installs into it."""
        venv = os.path.join(ARGS.work_dir, "venv")
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", "--system-site-packages",
                        venv], check=True, timeout=120)
        env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1")
        env.pop("PYTHONPATH", None)
        python = os.path.join(venv, "bin", "python")
        pip = subprocess.run([python, "-m", "pip", "install", "--no-index",
                              os.path.join(ARGS.source_dir, "client", "python")],
                             env=env, capture_output=True, text=True, timeout=300,
                             cwd=ARGS.work_dir)
        self.assertEqual(pip.returncode, 0, pip.stdout + pip.stderr)
        where = subprocess.run([python, "-c", "import segserve.v1.training_pb2_grpc, segserve;"
                                "print(segserve.__file__)"], env=env, capture_output=True,
                               text=True, timeout=60, cwd=ARGS.work_dir)
        self.assertEqual(where.returncode, 0, where.stderr)
        self.assertTrue(where.stdout.startswith(venv), where.stdout)
        env.update(SEGSERVE_ADDR=ARGS.target, SEGSERVE_TOKEN=ARGS.trainer_token)
        run = subprocess.run([python, os.path.join(ARGS.source_dir,
                                                   "client/python/examples/segment.py")],
                             env=env, capture_output=True, text=True, timeout=120,
                             cwd=ARGS.work_dir)
        self.assertEqual(run.returncode, 0, run.stderr)
        self.assertTrue(run.stdout.startswith("(256, 256) ["), run.stdout)


class TlsTest(unittest.TestCase):
    """Run against a TLS server (--tls_ca: the CA of its certificate for localhost)."""

    def test_segment_over_tls(self):
        image, _, reference = load_reference(0)
        with segserve.Client(ARGS.target, token=ARGS.trainer_token, tls=ARGS.tls_ca) as client:
            numpy.testing.assert_array_equal(client.segment(image, model="l1-pruned"), reference)
        with segserve.Client(ARGS.target, token=ARGS.trainer_token, timeout=10) as plaintext:
            with self.assertRaises(segserve.UnavailableError) as error:
                plaintext.segment(image, model="l1-pruned")
        self.assertEqual(error.exception.code, grpc.StatusCode.UNAVAILABLE)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    for flag in ("--target", "--source_dir", "--work_dir", "--trainer_token", "--viewer_token",
                 "--admin_token"):
        parser.add_argument(flag, required=True)
    parser.add_argument("--tls_ca", default=None)
    parser.add_argument("tests", nargs="*", help="test classes or methods (default: all)")
    ARGS = parser.parse_args()
    result = unittest.main(argv=[sys.argv[0], "-v"] + ARGS.tests, exit=False).result
    sys.exit(0 if result.wasSuccessful() else 1)
