"""The streaming core of prediction: ring buffer, quality gate, batched inference, rolling estimate.

Frames arrive one at a time (:class:`~sepsiscope.apply.sources.FrameEvent`). A ring buffer of
``2k + 1`` frames holds ``t``, ``t + k`` and ``t + 2k``; when frame ``t + 2k`` arrives and ``t`` is
a sampling instant (the same rule as ingest: the frame nearest each ``1 / rate_hz`` s), the sample
is made with :func:`sepsiscope.data.frame_quality.make_samples` and quality-gated exactly as ingest
gates a frame (:mod:`sepsiscope.data.frame_quality`: illumination + focus + stability < 10), except
that the relative focus rule uses the median focus of the frames seen so far (a live stream has no
"whole video"). Usable samples are batched (``batch_size``; 1 in live mode for latency) and
inferred; after each batch the rolling video-level probability and its interval are updated and an
:class:`Update` is yielded.

Interval: the frames of one recording are strongly correlated (same field of view, seconds
apart), so an i.i.d. interval over frames would be far too narrow. We use batch means: sample
probabilities are grouped into consecutive blocks of ``block_s`` seconds of video, and a Student
t interval is taken over the block means (m blocks, m - 1 degrees of freedom), centred on the mean
of all samples and clipped to [0, 1]. With fewer than two blocks the interval is [0, 1]. It says
how stable the model's output is over this recording; it does not include the variation between
videos, sites or patients.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np
from scipy import stats

from sepsiscope.apply.sources import FrameEvent
from sepsiscope.data import frame_quality as fq
from sepsiscope.data._sampling import SamplingPlan
from sepsiscope.data.video import VideoError, to_uint8

QUALITY_PARTS = ("illumination", "focus", "stability")


class RollingProbability:
    """Mean of sample probabilities so far, with a batch-means t interval (see module notes)."""

    def __init__(self, *, block_s: float = 2.0, confidence: float = 0.95) -> None:
        self.block_s = block_s
        self.confidence = confidence
        self._blocks: dict[int, list[float]] = {}
        self.total = 0.0
        self.n = 0

    def add(self, time_s: float, probability: float) -> None:
        block = self._blocks.setdefault(math.floor(time_s / self.block_s), [0.0, 0])
        block[0] += probability
        block[1] += 1
        self.total += probability
        self.n += 1

    @property
    def probability(self) -> float:
        return self.total / self.n if self.n else float("nan")

    @property
    def interval(self) -> tuple[float, float]:
        means = np.array([s / c for s, c in self._blocks.values()])
        if self.n == 0:
            return float("nan"), float("nan")
        if len(means) < 2:
            return 0.0, 1.0
        half = stats.t.ppf(0.5 + self.confidence / 2, len(means) - 1) * means.std(ddof=1)
        half /= math.sqrt(len(means))
        p = self.probability
        return max(0.0, p - half), min(1.0, p + half)


@dataclass
class Update:
    """Rows finished in one step, with the rolling estimate after it.

    ``rows``: one dict per sample (usable ones with ``probability``) or skipped frame;
    ``samples``: ``(n_usable_rows, 3, S, S)`` uint8 in row order; ``frames``: the grey anchor
    frame of each row (for annotation).
    """

    rows: list[dict]
    samples: np.ndarray
    frames: list[np.ndarray]
    probability: float
    interval: tuple[float, float]
    latencies_ms: list[float] = field(default_factory=list)


class _Gate:
    """Ingest's per-frame quality rule (see :mod:`sepsiscope.data._sampling`), streamed."""

    def __init__(self, fps: float, span: int, short: int) -> None:
        self.fps, self.span, self.short = fps, span, short
        self.focus: list[float] = []

    def __call__(self, stack: np.ndarray) -> dict:
        quality = fq.frame_quality(stack[0])
        self.focus.append(quality["focus"])
        shift_px = fq.frame_shift_px(stack[0], stack[2]) if self.span else 0.0
        motion = shift_px / self.short / (self.span / self.fps) if self.span else 0.0
        quality["focus_score"] = fq.focus_score(
            quality["focus"], video_median=float(np.median(self.focus))
        )
        quality["shift_px"] = shift_px
        quality["motion_field_per_s"] = motion
        quality["stability_score"] = fq.stability_score(motion)
        scores = [quality[f"{part}_score"] for part in QUALITY_PARTS]
        quality["quality_score"] = int(sum(scores))
        quality["usable"] = quality["quality_score"] < fq.REJECT_SCORE
        quality["skip_reason"] = "+".join(
            p for p, s in zip(QUALITY_PARTS, scores, strict=True) if s >= fq.REJECT_SCORE
        )
        return quality


def stream_predictions(
    events: Iterable[FrameEvent],
    infer: Callable[[np.ndarray], np.ndarray],
    plan: SamplingPlan,
    *,
    fps: float,
    batch_size: int,
    block_s: float = 2.0,
    confidence: float = 0.95,
    quality_gate: bool = True,
    um_per_px: float | None = None,
) -> Iterator[Update]:
    """Yield an :class:`Update` after each inferred batch (and for skipped frames).

    ``infer`` maps ``(n, 3, S, S)`` uint8 samples to ``(n,)`` probabilities (a back end).
    ``um_per_px`` sizes the crops when ``plan.field_um`` is set (as ingest does).
    Raises :class:`~sepsiscope.data.video.VideoError` when the frames are smaller than the samples
    or the field, have no scale for ``field_um``, or change size.
    """
    k = round(plan.channel_offset_s * fps)
    span = 2 * k
    step = plan.step(fps)
    ring: deque[FrameEvent] = deque(maxlen=span + 1)
    shape = gate = side_px = None
    white, events = fq.peek_white_level(events, fps=fps, frame=lambda event: event.frame)
    # frames read while the white level was set (up to 1 s of 16-bit video) waited for it; their
    # latency is the start-up's, not the stream's, and stays out of the latency figures
    batch = _Batch(infer, plan.size, RollingProbability(block_s=block_s, confidence=confidence),
                   started=time.perf_counter())  # fmt: skip
    for event in events:
        if shape is None:
            shape = event.frame.shape
            gate, side_px = _first_frame(shape, plan, fps=fps, span=span, um_per_px=um_per_px)
        elif event.frame.shape != shape:
            raise VideoError(f"frame {event.index} is {event.frame.shape}, the first was {shape}")
        ring.append(event)
        t = event.index - span
        if t < 0 or not plan.is_sample(t, step):
            continue
        stack = np.stack([to_uint8(ring[i].frame, max_value=white) for i in (0, k, span)])
        quality = gate(stack)
        if not quality_gate:
            quality.update(usable=True, skip_reason="")
        row = {"frame_index": int(t), "time_s": float(ring[0].time_s), **quality}
        sample = (
            fq.make_samples(stack, size=plan.size, crop=plan.crop, side_px=side_px)
            if row["usable"]
            else None
        )
        batch.pending.append((row, sample, stack[0], event.arrival))
        if batch.n_samples >= batch_size or (sample is None and batch.n_samples == 0):
            yield batch.flush()
    if batch.pending:
        yield batch.flush()


def _first_frame(
    shape: tuple[int, ...], plan: SamplingPlan, *, fps: float, span: int, um_per_px: float | None
) -> tuple[_Gate, int | None]:
    """The quality gate and crop side (px) for frames of ``shape``; VideoError when the frames
    are smaller than the samples or the field has no scale."""
    if min(shape) < plan.size:
        raise VideoError(
            f"frames of {shape[1]}x{shape[0]} px are smaller than the run's {plan.size} "
            "px samples (upsampling would invent detail)"
        )
    side_px = plan.side_px(
        um_per_px, *shape, source="", hint="give --um-per-px (or um_per_px in a manifest)"
    )
    return _Gate(fps, span, min(shape)), side_px


class _Batch:
    """Samples waiting for inference, and the rolling estimate their probabilities feed."""

    def __init__(
        self,
        infer: Callable[[np.ndarray], np.ndarray],
        size: int,
        rolling: RollingProbability,
        *,
        started: float,
    ) -> None:
        self.infer, self.size, self.rolling, self.started = infer, size, rolling, started
        # (row, samples or None when the frame was skipped, first grey frame, arrival time)
        self.pending: list[tuple[dict, np.ndarray | None, np.ndarray, float]] = []

    @property
    def n_samples(self) -> int:
        return sum(len(p[1]) for p in self.pending if p[1] is not None)

    def flush(self) -> Update:
        """Infer the pending samples; one row per sample (or skipped frame) with the rolling
        probability after this batch."""
        usable = [p for p in self.pending if p[1] is not None]
        samples = (
            np.concatenate([p[1] for p in usable])
            if usable
            else np.zeros((0, 3, self.size, self.size), np.uint8)
        )
        probs = np.asarray(self.infer(samples), dtype=np.float64) if len(samples) else []
        rows, frames, i = [], [], 0
        for row, sample, frame, _ in self.pending:
            n = 0 if sample is None else len(sample)
            for tile in range(max(n, 1)):
                out = {**row, "tile": tile, "probability": float("nan")}
                if n:
                    out["probability"] = float(probs[i])
                    self.rolling.add(row["time_s"], float(probs[i]))
                    i += 1
                rows.append(out)
                frames.append(frame)
        done = time.perf_counter()
        latencies = [(done - t) * 1e3 for _, _, _, t in usable if t >= self.started]
        low, high = self.rolling.interval
        probability = self.rolling.probability
        for out in rows:
            out.update(rolling_probability=probability, rolling_low=low, rolling_high=high)
        self.pending.clear()
        return Update(rows, samples, frames, probability, (low, high), latencies)
