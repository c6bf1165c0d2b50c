"""Plain dataclasses the client returns (no protobuf or pandas needed to use them).

Enum values are the proto names without their prefix: Job.state is "QUEUED", "RUNNING",
"SUCCEEDED", "FAILED" or "CANCELLED"; Job.kind "TRAIN", "SWEEP", "ANALYSIS", "SYNTH" or
"EXPERIMENT". A list of rows goes straight into a DataFrame where pandas is at hand:
pandas.DataFrame(report.rows).
"""
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy

TERMINAL_STATES = ("SUCCEEDED", "FAILED", "CANCELLED")


def enum_name(enum_type, value, prefix):
    name = enum_type.Name(value) if value in enum_type.values() else str(value)
    return name[len(prefix):] if name.startswith(prefix) else name


@dataclass(frozen=True)
class Progress:
    epoch: int = 0          # current epoch, 1-based; 0 before the first
    epochs: int = 0
    step: int = 0           # steps done in this epoch (SYNTH: images written)
    steps: int = 0
    loss: float = 0.0
    val_iou: float = 0.0
    best_val_iou: float = 0.0
    images_per_second: float = 0.0
    eta_seconds: float = 0.0
    fraction: float = 0.0   # 0..1 overall


@dataclass(frozen=True)
class Job:
    job_id: str
    kind: str
    state: str
    reason: str = ""
    progress: Progress = field(default_factory=Progress)
    model_name: str = ""       # TRAIN: the registered model
    model_version: int = 0
    metrics: Dict[str, float] = field(default_factory=dict)
    parent_job_id: str = ""
    child_job_ids: Tuple[str, ...] = ()
    created_unix_seconds: int = 0
    started_unix_seconds: int = 0
    finished_unix_seconds: int = 0
    restarts: int = 0

    @property
    def done(self) -> bool:
        return self.state in TERMINAL_STATES


@dataclass(frozen=True)
class JobEvent:
    """One event of Client.watch: the job as of the event."""
    job: Job
    terminal: bool
    message: str  # e.g. "epoch 3/50 val_iou 0.71"

    @property
    def state(self) -> str:
        return self.job.state

    @property
    def progress(self) -> Progress:
        return self.job.progress


@dataclass(frozen=True)
class LayerRow:
    """One row of a susceptibility report: one layer of one model."""
    model_name: str
    model_version: int
    layer: str                # encoder.stem, encoder.layer1..4, decoder.block0..4
    channels: int
    mean: float               # Hellinger distance over channels, each in [0, 1]
    median: float
    max: float
    null_mean: float          # the same between two halves of the source set (the floor)
    per_channel: Tuple[float, ...] = ()


@dataclass(frozen=True)
class AnalysisReport:
    rows: List[LayerRow]
    source_images: int
    target_images: int
    bins: int
    total_seconds: float = 0.0

    def layer(self, name: str, model_name: Optional[str] = None) -> LayerRow:
        """The row of one layer (of one model, when the report has several)."""
        for row in self.rows:
            if row.layer == name and model_name in (None, row.model_name):
                return row
        raise KeyError(name)


@dataclass(frozen=True)
class SegmentResult:
    """Everything Segment answers: Client.segment_result."""
    mask: numpy.ndarray                    # uint8 (height, width), class ids
    probabilities: Optional[numpy.ndarray]  # float32 (classes, height, width) when asked
    class_fractions: Tuple[float, ...]
    model_name: str
    model_version: int
    shift_score: float                     # -1 when the model has no reference statistics
    tiles: int
    request_id: str
    total_seconds: float


def progress_from_proto(p) -> Progress:
    return Progress(epoch=p.epoch, epochs=p.epochs, step=p.step, steps=p.steps, loss=p.loss,
                    val_iou=p.val_iou, best_val_iou=p.best_val_iou,
                    images_per_second=p.images_per_second, eta_seconds=p.eta_seconds,
                    fraction=p.fraction)


def job_from_proto(job) -> Job:
    from .v1 import training_pb2
    return Job(job_id=job.job_id, kind=enum_name(training_pb2.JobKind, job.kind, "JOB_KIND_"),
               state=enum_name(training_pb2.JobState, job.state, "JOB_STATE_"),
               reason=job.reason, progress=progress_from_proto(job.progress),
               model_name=job.model_name, model_version=job.model_version,
               metrics=dict(job.metrics), parent_job_id=job.parent_job_id,
               child_job_ids=tuple(job.child_job_ids),
               created_unix_seconds=job.created_unix_seconds,
               started_unix_seconds=job.started_unix_seconds,
               finished_unix_seconds=job.finished_unix_seconds, restarts=job.restarts)


def report_from_proto(report) -> AnalysisReport:
    rows = [LayerRow(model_name=m.model_name, model_version=m.model_version, layer=l.layer,
                     channels=l.channels, mean=l.mean, median=l.median, max=l.max,
                     null_mean=l.null_mean, per_channel=tuple(l.per_channel))
            for m in report.models for l in m.layers]
    return AnalysisReport(rows=rows, source_images=report.source_images,
                          target_images=report.target_images, bins=report.bins,
                          total_seconds=report.timings.total_seconds)


@dataclass(frozen=True)
class ModelVersion:
    """A stored model version, as import_model and export_model answer."""
    name: str
    version: int
    state: str               # "UNLOADED", "LOADING", "LOADED" or "FAILED"
    encoder: str = ""        # "RESNET18" / "RESNET34"
    skip_prune_level: int = 0
    in_channels: int = 0
    classes: int = 0


def model_version_from_proto(info) -> ModelVersion:
    from .v1 import models_pb2  # generated at build time
    return ModelVersion(
        name=info.name, version=info.version,
        state=enum_name(models_pb2.LoadState, info.state, "LOAD_STATE_"),
        encoder=enum_name(models_pb2.Encoder, info.config.encoder, "ENCODER_"),
        skip_prune_level=info.config.skip_prune_level, in_channels=info.config.in_channels,
        classes=info.config.classes)
