"""crossval's ensemble: the fold models as one run that predict, explain and export accept."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from sepsiscope.apply.explain import ExplainSettings, explain
from sepsiscope.apply.export import export
from sepsiscope.apply.predict import PredictSettings, predict
from sepsiscope.classifier.ensemble import is_ensemble, write_ensemble
from sepsiscope.classifier.evaluate import EvaluateSettings
from sepsiscope.classifier.inference import load_classifier
from sepsiscope.classifier.scores import level_tables, youden_threshold
from sepsiscope.layout import RunLayout
from sepsiscope.models.classifier import SepsisNet, prepare_batch
from sepsiscope.models.ensemble import EnsembleNet
from sepsiscope.models.gradcam import GradCAM
from tests._predict_fixtures import make_run, tiny_model, write_test_video

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_the_ensemble_averages_its_members_logits() -> None:
    members = [tiny_model(seed) for seed in (0, 1, 2)]
    ensemble = EnsembleNet(3).eval()
    for slot, model in zip(ensemble.members, members, strict=True):
        slot.load_state_dict(model.state_dict())
    x = prepare_batch(torch.randint(0, 256, (4, 3, 64, 64), dtype=torch.uint8))
    with torch.no_grad():
        expected = torch.stack([m(x) for m in members]).mean(0)
        assert torch.allclose(ensemble(x), expected, atol=1e-6)
        assert ensemble.member_logits(x).shape == (4, 3)
    one = EnsembleNet(1).eval()
    one.members[0].load_state_dict(members[0].state_dict())
    samples = np.random.default_rng(0).integers(0, 256, (2, 3, 64, 64), dtype=np.uint8)
    # Grad-CAM of a one-member ensemble is its member's
    a, pa = GradCAM(one, input_mode="time")(samples, target="septic")
    b, pb = GradCAM(members[0], input_mode="time")(samples, target="septic")
    np.testing.assert_allclose(a, b, atol=1e-6)
    np.testing.assert_allclose(pa, pb, atol=1e-6)


def _cv_run(root: Path, n_folds: int = 3) -> tuple[RunLayout, pd.DataFrame]:
    """A crossval-like run: fold models (different weights) and an out-of-fold table."""
    layout = RunLayout(root)
    for i in range(n_folds):
        make_run(layout.fold(i).root)
        from safetensors.torch import save_file

        save_file(tiny_model(seed=i).state_dict(), str(layout.fold(i).model))
    rng = np.random.default_rng(0)
    rows = []
    for p in range(12):
        y = p % 2
        for f in range(5):
            rows.append({"patient_id": f"p{p}", "video_id": f"p{p}_v", "y": y, "usable": True,
                         "probability": float(np.clip(0.3 + 0.35 * y + rng.normal(0, 0.15), 0, 1)),
                         "frame_index": f})  # fmt: skip
    return layout, pd.DataFrame(rows)


def test_crossvals_ensemble_is_a_run_every_verb_accepts(tmp_path: Path) -> None:
    layout, oof = _cv_run(tmp_path / "cv")
    settings = EvaluateSettings()
    ensemble = write_ensemble(layout, 3, oof, settings)
    assert ensemble is not None and is_ensemble(ensemble.root)
    assert not is_ensemble(layout.fold(0).root)
    model, _ = load_classifier(ensemble.root)
    assert isinstance(model, EnsembleNet) and len(model.members) == 3
    # the threshold comes from the pooled out-of-fold patients, never from a test split
    patients = level_tables(oof)["patient"]
    expected = youden_threshold(patients["y"].to_numpy(), patients["probability"].to_numpy())
    import json

    saved = json.loads(ensemble.threshold.read_text())
    assert saved["threshold"] == pytest.approx(expected["threshold"])
    assert "out-of-fold" in saved["source"] and saved["level"] == "patient"

    video = write_test_video(tmp_path / "v.avi", n=40)
    result = predict(ensemble.root, video, PredictSettings(backend="fp32"), quiet=True)
    assert result["threshold"] == pytest.approx(expected["threshold"])
    members = result["members"]
    assert members["n"] == 3 and len(members["probabilities"]) == 3
    assert members["sd"] == pytest.approx(np.std(members["probabilities"], ddof=1))
    # the members' own video probabilities are what each fold model alone gives
    frames = pd.read_parquet(result["table"])
    used = frames.dropna(subset=["probability"])
    # the ensemble's probability of each sample is the sigmoid of its members' mean logit
    singles = [predict(layout.fold(i).root, video, PredictSettings(backend="fp32",
               out=tmp_path / f"single{i}"), quiet=True) for i in range(3)]  # fmt: skip
    logits = np.mean([_logit(pd.read_parquet(s["table"]).dropna(subset=["probability"])
                             ["probability"].to_numpy()) for s in singles], axis=0)  # fmt: skip
    np.testing.assert_allclose(used["probability"], 1 / (1 + np.exp(-logits)), atol=2e-4)
    alone = [pd.read_parquet(s["table"])["probability"].mean() for s in singles]
    np.testing.assert_allclose(members["probabilities"], alone, atol=2e-4)

    explained = explain(ensemble.root, ExplainSettings(n=2, out=tmp_path / "x"), video=video,
                        quiet=True)  # fmt: skip
    assert explained["n"] == 2 and all(Path(p).exists() for p in explained["pngs"])
    exported = export(ensemble.root)
    assert exported["max_abs_diff"] < 1e-4


def test_no_ensemble_when_a_fold_model_is_unreadable(tmp_path: Path, caplog) -> None:
    layout, oof = _cv_run(tmp_path / "cv", n_folds=2)
    layout.fold(1).model.write_bytes(b"not a model")
    assert write_ensemble(layout, 2, oof, EvaluateSettings()) is None
    assert "no ensemble written" in caplog.text and not layout.ensemble.model.exists()


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return np.log(p / (1 - p))


def test_a_sepsisnet_file_is_not_an_ensemble(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    from sepsiscope.classifier.inference import load_model_file
    from sepsiscope.errors import InputError

    save_file(SepsisNet().state_dict(), str(tmp_path / "m.safetensors"))
    with pytest.raises(InputError, match="does not hold an EnsembleNet classifier"):
        load_model_file(tmp_path / "m.safetensors", EnsembleNet(2))


def test_interpret_with_the_ensemble_uses_its_folds_out_of_fold_probabilities(tmp_path) -> None:
    from sepsiscope._io import write_table
    from sepsiscope.microcirculation.interpret import _network_patients

    layout, oof = _cv_run(tmp_path / "cv", n_folds=2)
    ensemble = write_ensemble(layout, 2, oof, EvaluateSettings())
    patients = level_tables(oof)["patient"]
    write_table(layout.oof_patients, patients)
    table, source = _network_patients(ensemble.root)
    assert "out-of-fold" in source and "ensemble" in source
    assert sorted(table["patient_id"]) == sorted(patients["patient_id"])
