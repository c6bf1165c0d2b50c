"""segserve.Client: one gRPC channel to a segserve server and the calls a pipeline makes.

Every call sends the bearer token (metadata `authorization: Bearer <token>`, as segctl does)
and an `x-request-id` (the server logs the call under it and echoes it); a failed call raises
the typed exception of segserve.errors with the status code, message and request id.
Unary calls have a deadline (the client's `timeout`, or the call's); streams
(segment_many, watch, import_model, export_model) have none unless given.
"""
import hashlib
import os
import threading
import uuid

import grpc
from google.protobuf import json_format

from . import images as _images
from . import datatypes as _data
from .errors import REQUEST_ID_HEADER, SegserveError, error_for, from_rpc_error
from .v1 import (datasets_pb2, datasets_pb2_grpc, models_pb2, models_pb2_grpc, segmentation_pb2,
                 segmentation_pb2_grpc, susceptibility_pb2, susceptibility_pb2_grpc,
                 training_pb2, training_pb2_grpc)

DEFAULT_ADDRESS = "localhost:50051"
DEFAULT_MODEL = "baseline"
_MAX_MESSAGE_BYTES = 64 << 20


def new_request_id() -> str:
    return uuid.uuid4().hex[:16]


def _read(path):
    with open(path, "rb") as f:
        return f.read()


def _model_ref(ref, model):
    """Fills a segserve.v1.ModelRef from "name", "alias" or "name:version"."""
    name, _, version = str(model).partition(":")
    ref.name = name
    if version:
        ref.version = int(version)
    return ref


def _job_id(job):
    if isinstance(job, str):
        return job
    return job.job_id  # a segserve.Job, or a segserve.v1 Job message


def _encoder(value):
    if isinstance(value, str) and not value.upper().startswith("ENCODER_"):
        return "ENCODER_" + value.upper()
    return value


class Client:
    """A connection to segserve.

    address: HOST:PORT (default $SEGSERVE_ADDR, else localhost:50051).
    token: bearer token (default $SEGSERVE_TOKEN; "" sends none).
    tls: None/False = plaintext; True = TLS trusting the system's CAs; a path = TLS
      trusting that CA file (PEM). tls_cert/tls_key: client certificate and key for
      mutual TLS. tls_server_name: the name to check the server certificate against
      (when it differs from the host in `address`).
    timeout: deadline of each unary call in seconds (default 30).
    """

    def __init__(self, address=None, token=None, tls=None, *, tls_cert=None, tls_key=None,
                 tls_server_name=None, timeout=30.0, max_message_bytes=_MAX_MESSAGE_BYTES):
        self.address = address or os.environ.get("SEGSERVE_ADDR") or DEFAULT_ADDRESS
        self._token = os.environ.get("SEGSERVE_TOKEN", "") if token is None else token
        self.timeout = timeout
        options = [("grpc.max_receive_message_length", max_message_bytes),
                   ("grpc.max_send_message_length", max_message_bytes)]
        if tls_server_name:
            options.append(("grpc.ssl_target_name_override", tls_server_name))
        if tls or tls_cert:
            credentials = grpc.ssl_channel_credentials(
                root_certificates=_read(tls) if isinstance(tls, (str, os.PathLike)) else None,
                private_key=_read(tls_key) if tls_key else None,
                certificate_chain=_read(tls_cert) if tls_cert else None)
            self._channel = grpc.secure_channel(self.address, credentials, options)
        else:
            self._channel = grpc.insecure_channel(self.address, options)
        self._segmentation = segmentation_pb2_grpc.SegmentationStub(self._channel)
        self._training = training_pb2_grpc.TrainingStub(self._channel)
        self._datasets = datasets_pb2_grpc.DatasetsStub(self._channel)
        self._susceptibility = susceptibility_pb2_grpc.SusceptibilityStub(self._channel)
        self._models = models_pb2_grpc.ModelsStub(self._channel)

    def close(self):
        self._channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @property
    def channel(self) -> grpc.Channel:
        """The channel, for the generated stubs in segserve.v1 (other RPCs)."""
        return self._channel

    def metadata(self, request_id):
        """The call metadata this client sends: request id and, with a token, the bearer."""
        metadata = [(REQUEST_ID_HEADER, request_id)]
        if self._token:
            metadata.append(("authorization", "Bearer " + self._token))
        return metadata

    def _unary(self, method, request, timeout=None, request_id=None):
        request_id = request_id or new_request_id()
        try:
            return method(request, timeout=self.timeout if timeout is None else timeout,
                          metadata=self.metadata(request_id))
        except grpc.RpcError as e:
            raise from_rpc_error(e, request_id) from None

    # Segmentation

    def _segment_request(self, image, model, request_id, probabilities, tile_size,
                         tile_overlap):
        request = segmentation_pb2.SegmentRequest(request_id=request_id)
        _model_ref(request.model, model)
        request.image.CopyFrom(_images.to_image(image))
        request.options.mask_encoding = segmentation_pb2.MASK_RAW
        request.options.return_probabilities = probabilities
        request.options.tile_size = tile_size
        request.options.tile_overlap = tile_overlap
        return request

    @staticmethod
    def _result(response):
        return _data.SegmentResult(
            mask=_images.mask_from_response(response),
            probabilities=_images.probabilities_from_response(response),
            class_fractions=tuple(response.class_fractions), model_name=response.model_name,
            model_version=response.model_version, shift_score=response.shift_score,
            tiles=response.tiles, request_id=response.request_id,
            total_seconds=response.timings.total_seconds)

    def segment_result(self, image, model=DEFAULT_MODEL, *, probabilities=False, tile_size=0,
                       tile_overlap=0.0, timeout=None, request_id=None) -> _data.SegmentResult:
        """Segment with everything the server answers (mask, probabilities when asked,
        class fractions, shift score, the model used, tiles, timing)."""
        request_id = request_id or new_request_id()
        request = self._segment_request(image, model, request_id, probabilities, tile_size,
                                        tile_overlap)
        return self._result(self._unary(self._segmentation.Segment, request, timeout, request_id))

    def segment(self, image, model=DEFAULT_MODEL, **options):
        """The mask of one image: numpy uint8 (height, width), pixel value = class id.

        image: a numpy array (H, W) or (H, W, C) of uint8, uint16 or float in [0, 1], or
        the path (or bytes) of a PNG, JPEG or TIFF file. model: name, alias or
        "name:version". Options as segment_result."""
        return self.segment_result(image, model, **options).mask

    def segment_many(self, images, model=DEFAULT_MODEL, *, max_in_flight=8, detailed=False,
                     probabilities=False, tile_size=0, tile_overlap=0.0, timeout=None):
        """Masks of many images over one SegmentStream, yielded in input order.

        At most `max_in_flight` images are sent and not yet yielded, so a slow consumer
        holds back the sender and memory stays bounded. An image that fails raises its
        typed exception (with .index) when its turn comes; the masks before it have been
        yielded. detailed=True yields SegmentResult instead of masks (with probability
        planes when probabilities=True). Stopping the iteration early cancels the stream."""
        if max_in_flight < 1:
            raise ValueError("max_in_flight: must be >= 1")
        stream_id = new_request_id()
        slots = threading.Semaphore(max_in_flight)
        done = threading.Event()
        bad_input = []  # (index, exception) of an image that could not be turned into a request

        def requests():
            # Runs on a gRPC thread; ends early when the consumer went away. An exception of
            # the input iterable or of an image is raised to the consumer at that image's turn.
            source = iter(images)
            index = 0
            while True:
                while not slots.acquire(timeout=0.1):
                    if done.is_set():
                        return
                if done.is_set():
                    return
                try:
                    request = self._segment_request(next(source), model,
                                                    "%s-%d" % (stream_id, index), probabilities,
                                                    tile_size, tile_overlap)
                except StopIteration:
                    return
                except Exception as e:
                    bad_input.append((index, e))
                    return
                yield request
                index += 1

        call = self._segmentation.SegmentStream(requests(), timeout=timeout,
                                                metadata=self.metadata(stream_id))
        pending = {}
        next_index = 0
        try:
            while True:
                if next_index in pending:
                    response = pending.pop(next_index)
                    slots.release()
                    if response.HasField("error"):
                        raise error_for(response.error.code, response.error.message,
                                        response.request_id, index=next_index)
                    yield self._result(response) if detailed else _images.mask_from_response(
                        response)
                    next_index += 1
                    continue
                if bad_input and bad_input[0][0] == next_index:
                    raise bad_input[0][1]
                try:
                    response = next(call)
                except StopIteration:
                    break
                except grpc.RpcError as e:
                    raise from_rpc_error(e, stream_id) from None
                prefix, _, index = response.request_id.rpartition("-")
                if prefix != stream_id or not index.isdigit():
                    raise SegserveError("SegmentStream: response for an unknown request id %r"
                                        % response.request_id, request_id=stream_id)
                pending[int(index)] = response
            if bad_input and bad_input[0][0] == next_index:
                raise bad_input[0][1]
            if pending:
                raise SegserveError("SegmentStream ended without the response of image %d"
                                    % next_index, request_id=stream_id)
        finally:
            done.set()
            call.cancel()

    # Jobs: data sets and training

    def generate_dataset(self, name, n=500, size=256, seed=1, *, timeout=None) -> _data.Job:
        """Starts a synthetic data-set job (Datasets.Generate); follow it with watch or wait."""
        request = datasets_pb2.GenerateDatasetRequest(name=name, n=n, size=size, seed=seed)
        return _data.job_from_proto(self._unary(self._datasets.Generate, request, timeout))

    def submit_train(self, dataset, *, timeout=None, **spec) -> _data.Job:
        """Queues a training job (Training.SubmitTrain) and returns it (state QUEUED).

        Keyword arguments are TrainSpec fields (proto/segserve/v1/training.proto), e.g.
        encoders=["resnet18"], prune_levels=[0, 1], epochs=3, batch_size=4,
        learning_rate=3e-3, max_steps_per_epoch=10, model_name="mine",
        set_aliases=["baseline"], cross_domain=[{"label": "brightness:4", "dataset":
        {"name": "smears", "split": "test", "shift": {"kind": "KIND_BRIGHTNESS",
        "level": 4}}}]. A single encoder or prune level may be given without a list; encoders
        may be written "resnet18" or "ENCODER_RESNET18". Unknown fields raise ValueError."""
        spec = dict(spec, dataset=dataset)
        for key in ("encoders", "prune_levels", "set_aliases"):
            if key in spec and isinstance(spec[key], (str, int)):
                spec[key] = [spec[key]]
        if "encoders" in spec:
            spec["encoders"] = [_encoder(e) for e in spec["encoders"]]
        try:
            request = json_format.ParseDict(spec, training_pb2.TrainSpec())
        except json_format.ParseError as e:
            raise ValueError("submit_train: %s" % e) from None
        return _data.job_from_proto(self._unary(self._training.SubmitTrain, request, timeout))

    def get_job(self, job, *, timeout=None) -> _data.Job:
        request = training_pb2.JobRef(job_id=_job_id(job))
        return _data.job_from_proto(self._unary(self._training.GetJob, request, timeout))

    def cancel_job(self, job, *, timeout=None) -> _data.Job:
        request = training_pb2.JobRef(job_id=_job_id(job))
        return _data.job_from_proto(self._unary(self._training.CancelJob, request, timeout))

    def watch(self, job, *, timeout=None):
        """Yields JobEvent (job state, progress, message) until the terminal event; a
        finished job yields one. job: a Job or a job id. timeout: for the whole watch."""
        request_id = new_request_id()
        call = self._training.WatchJob(training_pb2.JobRef(job_id=_job_id(job)),
                                       timeout=timeout, metadata=self.metadata(request_id))
        try:
            for event in call:
                yield _data.JobEvent(job=_data.job_from_proto(event.job),
                                      terminal=event.terminal, message=event.message)
                if event.terminal:
                    return
        except grpc.RpcError as e:
            raise from_rpc_error(e, request_id) from None
        finally:
            call.cancel()

    def wait(self, job, *, timeout=None) -> _data.Job:
        """The job once it has ended (SUCCEEDED, FAILED or CANCELLED)."""
        last = None
        for event in self.watch(job, timeout=timeout):
            last = event.job
        return last if last is not None else self.get_job(job)

    # Models: weights in and out, streamed (no message-size ceiling)

    def import_model(self, path, name, *, encoder="resnet34", prune_level=0, in_channels=3,
                     classes=2, encoder_only=False, load=False, chunk_bytes=1 << 20,
                     import_id=None, timeout=None) -> _data.ModelVersion:
        """Stores a torch.save(model.state_dict()) file as the next version of `name`
        (Models.ImportStream; admin role): segmentation_models_pytorch Unet keys, or with
        encoder_only a torchvision ResNet's. The file is read and sent a chunk at a time,
        with its size and SHA-256, which the server checks. load: serve it at once.
        import_id (default: a random one): calling again with the same id after a lost
        reply returns the version the first call registered instead of adding another."""
        size = os.path.getsize(path)
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(chunk_bytes), b""):
                digest.update(block)
        header = models_pb2.ImportModelRequest(
            name=name, non_strict=encoder_only, load=load, state_dict_bytes=size,
            state_dict_sha256=digest.hexdigest(),
            import_id=import_id or "import-" + uuid.uuid4().hex)
        header.config.encoder = models_pb2.Encoder.Value(_encoder(encoder))
        header.config.skip_prune_level = prune_level
        header.config.in_channels = in_channels
        header.config.classes = classes

        def chunks():
            yield models_pb2.ImportModelChunk(header=header)
            with open(path, "rb") as f:
                for block in iter(lambda: f.read(chunk_bytes), b""):
                    yield models_pb2.ImportModelChunk(data=block)

        request_id = new_request_id()
        try:
            info = self._models.ImportStream(chunks(), timeout=timeout,
                                             metadata=self.metadata(request_id))
        except grpc.RpcError as e:
            raise from_rpc_error(e, request_id) from None
        return _data.model_version_from_proto(info)

    def export_model(self, model, path, *, format="smp", timeout=None) -> _data.ModelVersion:
        """Writes a stored version (name, alias or name:version) to `path` as a torch.save
        state dict (Models.Export; trainer role): format "smp" (segmentation_models_pytorch
        Unet keys: torch.load it into smp's Unet with strict=True) or "torchvision-encoder"
        (the encoder alone). Written through path + ".part", checked against the size and
        SHA-256 the server announced, then renamed: the file is whole or absent."""
        formats = {"smp": models_pb2.ExportModelRequest.FORMAT_SMP,
                   "torchvision-encoder": models_pb2.ExportModelRequest.FORMAT_TORCHVISION_ENCODER}
        if format not in formats:
            raise ValueError("export_model: format must be one of %s" % sorted(formats))
        request = models_pb2.ExportModelRequest(format=formats[format])
        _model_ref(request.model, model)
        request_id = new_request_id()
        part = os.fspath(path) + ".part"
        header, received, digest = None, 0, hashlib.sha256()
        call = self._models.Export(request, timeout=timeout, metadata=self.metadata(request_id))
        try:
            with open(part, "wb") as f:
                for chunk in call:
                    if chunk.HasField("header"):
                        header = chunk.header
                        continue
                    if header is None:
                        raise SegserveError("Export: data before the header", request_id)
                    f.write(chunk.data)
                    digest.update(chunk.data)
                    received += len(chunk.data)
            if header is None:
                raise SegserveError("Export: the server sent no header", request_id)
            if received != header.size_bytes or digest.hexdigest() != header.sha256:
                raise SegserveError(
                    "Export: received %d bytes with SHA-256 %s; the server announced %d bytes "
                    "with %s" % (received, digest.hexdigest(), header.size_bytes,
                                 header.sha256), request_id)
            os.replace(part, path)
        except grpc.RpcError as e:
            raise from_rpc_error(e, request_id) from None
        finally:
            call.cancel()
            if os.path.exists(part):
                os.remove(part)
        return _data.model_version_from_proto(header.model)

    # Susceptibility

    def analyze(self, models, source, target, *, bins=0, skip_null=False,
                timeout=None) -> _data.AnalysisReport:
        """Per-layer Hellinger distances between the feature distributions of `models` on
        two image domains (Susceptibility.Analyze). models: a name/alias or a list of them.
        source, target: an iterable of images (arrays or paths, as segment takes), a
        server-side data-set name, or a segserve.Dataset (split, shift, limit). Returns an
        AnalysisReport whose rows are plain LayerRow dataclasses."""
        request = susceptibility_pb2.AnalyzeRequest(bins=bins, skip_null=skip_null)
        for model in [models] if isinstance(models, str) else models:
            _model_ref(request.models.add(), model)
        _images.to_image_set(source, request.source)
        _images.to_image_set(target, request.target)
        return _data.report_from_proto(
            self._unary(self._susceptibility.Analyze, request, timeout))
