"""The whole pipeline on a synthetic cohort, in one command, ending with the path of the report.

``run_demo(out_dir, settings)`` calls each stage's library function in turn (the list
:data:`STAGES`): simulate -> ingest -> train -> evaluate -> embed -> autoencode -> cluster ->
measure -> report, with settings sized to finish in 10 minutes on 2 CPU cores without bf16. Folders
(:class:`sepsiscope.layout.DemoLayout`)::

    OUT/cohort/   the simulated videos, manifest and ground truth
    OUT/store/    the frame store
    OUT/run/      classifier, evaluation, embedding, autoencoder, clusters, measurements,
                  report.html
    OUT/demo.json the demo's settings and each finished stage's result and time

A rerun skips the stages already finished (their result is in demo.json and their key file
exists), so an interrupted demo resumes where it stopped. The data are synthetic; no figure of the
demo is a clinical result.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from sepsiscope._io import read_json, write_json
from sepsiscope.errors import InputError, PartialFailure
from sepsiscope.layout import DemoLayout, MeasurementLayout
from sepsiscope.settings import StageSettings, provenance

DEFAULT_OUT = "sepsiscope-demo"


class DemoSettings(StageSettings):
    """Sizes of the demo; the defaults fit in 10 minutes on 2 CPU cores without bf16 (AVX2).

    ``tiny()`` is a preset of about a minute for CI: six 1.5-s videos of small frames, one
    epoch. Its figures mean nothing; it only proves that every stage runs end to end.
    """

    # 32 patients x 2 sites rather than the study-like 24 x 3: fewer videos, but a test split of
    # 10 patients (5 of each label) instead of 4; 40 patients and 15 epochs took 21 min on a
    # 2-core AVX2 EPYC (issue 15), the budget is 10.
    patients: int = Field(32, ge=4)
    videos_per_patient: int = Field(2, ge=1)
    seconds: float = Field(3.0, gt=0)
    camera: Literal["microscan", "cytocam", "mixed"] = "mixed"
    width: int | None = Field(None, description="override the camera's frame width, px")
    height: int | None = Field(None, description="override the camera's frame height, px")
    seed: int = 0
    # ingest
    rate_hz: float = Field(4.0, gt=0, description="stored samples per second of video")
    size: int = Field(224, ge=16, description="side of the stored samples, px")
    min_duration_s: float | None = Field(None, description="Massey duration gate; None = ingest's")
    folds: int = Field(5, ge=0, description="cross-validation folds kept in the store")
    val: float = Field(0.2, gt=0, lt=1, description="fraction of patients for validation")
    test: float = Field(0.3, gt=0, lt=1, description="fraction of patients for the test split")
    # classifier
    # the selection kept epochs 1-4 of 15 on a 40-patient cohort (docs/evaluation.md)
    epochs: int = Field(6, ge=1)
    patience: int = Field(3, ge=1, description="epochs without a better val patient AUC")
    n_bootstrap: int = Field(1000, ge=0)
    # representations
    perplexity: float = Field(30.0, gt=0, description="t-SNE perplexity (embed and cluster)")
    tsne_iterations: int = Field(500, ge=50, description="t-SNE optimisation steps of embed")
    autoencoder_epochs: int = Field(5, ge=1)
    bottleneck: int = 1152
    k: int = Field(2, ge=2)
    k_max: int = Field(6, ge=2, description="largest k of the cluster sweep")
    # measure and the interpretable classifier
    workers: int = Field(2, ge=1, description="videos measured in parallel")
    combine: bool = Field(True, description="add the network's patient probability (>= 4 test)")

    @classmethod
    def tiny(cls, **overrides: Any) -> DemoSettings:
        """The CI preset: 6 patients, one 1-s video each, 96x96 px frames, 48-px samples."""
        values: dict[str, Any] = dict(
            patients=6, videos_per_patient=1, seconds=1.5, camera="microscan", width=96,
            height=96, rate_hz=10.0, size=48, min_duration_s=0.5, folds=0, epochs=1, n_bootstrap=20,
            tsne_iterations=100, autoencoder_epochs=1, k_max=3, workers=1, combine=False,
        )  # fmt: skip
        return cls(**{**values, **overrides})


@dataclass(frozen=True)
class Stage:
    """One step of the demo: the library call and the file that shows it finished."""

    name: str
    run: Callable[[DemoLayout, DemoSettings, bool], dict[str, Any]]
    artifact: Callable[[DemoLayout], Path]


# --- the stages, each a call of one library function ---------------------------------------------


def _simulate(d: DemoLayout, s: DemoSettings, quiet: bool) -> dict[str, Any]:
    from sepsiscope.simulate import SimulateSettings, simulate_cohort

    settings = SimulateSettings(
        patients=s.patients, videos_per_patient=s.videos_per_patient, seconds=s.seconds,
        camera=s.camera, seed=s.seed, width=s.width, height=s.height,
    )  # fmt: skip
    return simulate_cohort(d.cohort.root, settings, quiet=quiet)


def _ingest(d: DemoLayout, s: DemoSettings, quiet: bool) -> dict[str, Any]:
    from sepsiscope.data.ingest import IngestSettings, ingest

    extra = {}
    if s.min_duration_s is not None:
        extra = {"min_duration_s": s.min_duration_s, "optimal_duration_s": s.seconds}
    settings = IngestSettings(
        rate_hz=s.rate_hz, size=s.size, seed=s.seed, folds=s.folds, val=s.val, test=s.test, **extra
    )
    try:
        return ingest(d.cohort.manifest, d.store.root, settings, quiet=quiet)
    except PartialFailure as exc:  # a failed video is listed; the others go on
        return {**(getattr(exc, "result", None) or {}), "warning": str(exc)}


def _train(d: DemoLayout, s: DemoSettings, quiet: bool) -> dict[str, Any]:
    from sepsiscope.classifier.train import TrainSettings, train

    settings = TrainSettings(epochs=s.epochs, patience=s.patience, seed=s.seed)
    return train(d.store.root, d.run.root, settings, quiet=quiet, overwrite=True)


def _evaluate(d: DemoLayout, s: DemoSettings, quiet: bool) -> dict[str, Any]:
    from sepsiscope.classifier.evaluate import EvaluateSettings, evaluate

    settings = EvaluateSettings(n_bootstrap=s.n_bootstrap, seed=s.seed, store=d.store.root)
    return evaluate(d.run.root, settings, quiet=quiet)


def _embed(d: DemoLayout, s: DemoSettings, quiet: bool) -> dict[str, Any]:
    from sepsiscope.representations.embed import EmbedSettings, embed

    settings = EmbedSettings(
        split="val", perplexity=s.perplexity, n_iter=s.tsne_iterations,
        early_exaggeration_iter=min(250, s.tsne_iterations // 2), seed=s.seed, store=d.store.root,
    )  # fmt: skip
    return embed(d.run.root, settings, quiet=quiet)


def _autoencode(d: DemoLayout, s: DemoSettings, quiet: bool) -> dict[str, Any]:
    from sepsiscope.representations.autoencode import AutoencodeSettings, autoencode

    settings = AutoencodeSettings(
        bottleneck=(s.bottleneck,), epochs=s.autoencoder_epochs, seed=s.seed
    )
    return autoencode(d.store.root, d.run.root, settings, quiet=quiet)


def _cluster(d: DemoLayout, s: DemoSettings, quiet: bool) -> dict[str, Any]:
    from sepsiscope.representations.cluster import ClusterSettings, cluster

    settings = ClusterSettings(
        k=s.k, k_max=s.k_max, features="autoencoder", split="val", perplexity=s.perplexity,
        seed=s.seed, store=d.store.root,
    )  # fmt: skip
    return cluster(d.run.root, settings, quiet=quiet)


def _measure(d: DemoLayout, s: DemoSettings, quiet: bool) -> dict[str, Any]:
    from sepsiscope.microcirculation.measure import MeasureSettings, measure

    settings = MeasureSettings(workers=s.workers, kymographs=2)
    try:
        result = measure(d.cohort.manifest, d.run.measurements, settings, quiet=quiet)
    except PartialFailure as exc:  # an unreadable video is listed; the others are measured
        result = {**(getattr(exc, "result", None) or {}), "warning": str(exc)}
    return {k: v for k, v in result.items() if k != "videos"}  # the table holds them


def _interpret(d: DemoLayout, s: DemoSettings, quiet: bool) -> dict[str, Any]:
    from sepsiscope.microcirculation.interpret import InterpretSettings, interpret

    run_dir = d.run.root if s.combine else None
    return interpret(d.run.measurements, InterpretSettings(seed=s.seed), run_dir=run_dir)


def _report(d: DemoLayout, s: DemoSettings, quiet: bool) -> dict[str, Any]:
    from sepsiscope.reporting.report import ReportSettings, report

    settings = ReportSettings(
        store=str(d.store.root), synthetic=True, title="sepsiscope demo (synthetic cohort)"
    )
    return report(d.run.root, settings, quiet=quiet)


STAGES: tuple[Stage, ...] = (
    Stage("simulate", _simulate, lambda d: d.cohort.manifest),
    Stage("ingest", _ingest, lambda d: d.store.frames),
    Stage("train", _train, lambda d: d.run.model),
    Stage("evaluate", _evaluate, lambda d: d.run.evaluation / "metrics.json"),
    Stage("embed", _embed, lambda d: d.run.embedding_of("val").scores),
    Stage("autoencode", _autoencode, lambda d: d.run.autoencoder_sweep),
    Stage("cluster", _cluster, lambda d: d.run.clusters_of("autoencoder", "val").metrics),
    Stage("measure", _measure, lambda d: MeasurementLayout(d.run.measurements).summary),
    Stage(
        "interpret",
        _interpret,
        lambda d: MeasurementLayout(d.run.measurements).interpret.result,
    ),
    Stage("report", _report, lambda d: d.run.report),
)


# --- running them --------------------------------------------------------------------------------


def run_demo(
    out_dir: str | Path = DEFAULT_OUT,
    settings: DemoSettings | None = None,
    *,
    quiet: bool = False,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Run every stage of :data:`STAGES` into ``out_dir``, skipping those already finished.

    Parameters
    ----------
    out_dir : an empty or missing folder, or an earlier demo's folder (which resumes).
    settings : sizes; :class:`DemoSettings` defaults fit 10 minutes on 2 CPU cores (AVX2).
    quiet : no progress bars (one line per stage is still printed on stderr).
    overwrite : start an earlier demo's folder again from nothing.

    Returns
    -------
    ``{"report": path, "out_dir", "cohort", "store", "run", "stages": {name: {"status":
    "done" | "skipped", "seconds", "cpu_seconds"}}, "seconds": total, "patient_auc"}``

    Example
    -------
    >>> run_demo("demo", DemoSettings.tiny())["report"]  # doctest: +SKIP
    'demo/run/report.html'
    """
    settings = settings or DemoSettings()
    d = DemoLayout(out_dir)
    state = _open_state(d, settings, overwrite=overwrite)
    stages: dict[str, dict[str, Any]] = {}
    ran_any = False
    started = time.perf_counter()
    for number, stage in enumerate(STAGES, start=1):
        tag = f"[{number}/{len(STAGES)}] {stage.name}"
        previous = state["stages"].get(stage.name)
        finished = previous is not None and stage.artifact(d).exists()
        if finished and not (stage.name == "report" and ran_any):
            _say(f"{tag}: already done, skipped")
            stages[stage.name] = {"status": "skipped", "seconds": previous["seconds"],
                                  "cpu_seconds": previous.get("cpu_seconds")}  # fmt: skip
            continue
        _say(f"{tag} ...")
        t0, cpu0 = time.perf_counter(), _cpu_seconds()
        with warnings.catch_warnings():  # a library's deprecation notes are not the user's
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.filterwarnings("ignore", message=".*LeafSpec.*")
            result = stage.run(d, settings, quiet)
        seconds = round(time.perf_counter() - t0, 1)
        # CPU time (all threads and child processes) does not depend on what else runs
        timing = {"seconds": seconds, "cpu_seconds": round(_cpu_seconds() - cpu0, 1)}
        _say(f"{tag}: done in {seconds:.1f} s")
        ran_any = True
        state["stages"][stage.name] = {**timing, "result": result}
        write_json(d.state, state)  # after every stage, so a killed demo resumes here
        stages[stage.name] = {"status": "done", **timing}
    evaluation = state["stages"].get("evaluate", {}).get("result", {})
    result = {
        "report": str(d.run.report),
        "out_dir": str(d.root),
        "cohort": str(d.cohort.root),
        "store": str(d.store.root),
        "run": str(d.run.root),
        "stages": stages,
        "seconds": round(time.perf_counter() - started, 1),
        "seconds_all_stages": round(sum(v["seconds"] for v in state["stages"].values()), 1),
        "patient_auc": evaluation.get("patient_auc"),
        "synthetic": True,
    }
    _say(f"report: {d.run.report}")
    return result


def _open_state(d: DemoLayout, settings: DemoSettings, *, overwrite: bool) -> dict[str, Any]:
    """The demo's state file; refuses a folder that is not a demo or has other settings."""
    wanted = settings.model_dump(mode="json")
    if d.root.exists() and any(d.root.iterdir()):
        if not d.state.exists():
            raise InputError(
                f"{d.root} is not empty and holds no demo: choose another --out folder"
            )
        state = read_json(d.state)
        if overwrite:
            shutil.rmtree(d.root)
        elif state.get("settings") != wanted:
            raise InputError(
                f"{d.root} holds a demo made with other settings: use --overwrite to start it "
                "again, or choose another --out folder"
            )
        else:
            return state
    d.root.mkdir(parents=True, exist_ok=True)
    state = {"settings": wanted, "stages": {}, **provenance()}
    write_json(d.state, state)
    return state


def _cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def _say(line: str) -> None:
    print(f"demo {line}", file=sys.stderr, flush=True)
