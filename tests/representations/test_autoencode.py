"""The convolutional autoencoder: shapes, no skips, training with per-epoch figures, resume,
the bottleneck sweep and its identity check, the CLI verb."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from _repr_data import make_store
from skimage.metrics import structural_similarity
from torch import nn
from typer.testing import CliRunner

from sepsiscope.cli import app
from sepsiscope.errors import InputError
from sepsiscope.layout import RunLayout
from sepsiscope.models.autoencoder import ConvAutoencoder, to_unit_range
from sepsiscope.representations._reconstruction_quality import (
    psnr_per_image,
    r2_per_image,
    ssim_per_image,
)
from sepsiscope.representations.autoencode import (
    AutoencodeSettings,
    autoencode,
    load_autoencoder,
    probe_images,
    recommend_bottleneck,
)

runner = CliRunner()
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("bottleneck", [288, 576, 1152, 2304])
def test_bottleneck_sizes_at_224_px(bottleneck):
    model = ConvAutoencoder(bottleneck)
    x = torch.rand(1, 3, 224, 224)
    with torch.no_grad():
        code = model.encode(x)
        out = model.decode(code)
    assert code.shape == (1, bottleneck) and model.feature_dim == bottleneck
    assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1  # sigmoid output


def test_three_conv_layers_each_way_and_no_skip_connections():
    model = ConvAutoencoder()  # default: the study's 1152 features
    assert model.feature_dim == 1152
    assert sum(isinstance(m, nn.Conv2d) for m in model.encoder.modules()) == 3
    assert sum(isinstance(m, nn.ConvTranspose2d) for m in model.decoder.modules()) == 3
    weighted = [m for m in model.modules() if isinstance(m, nn.Conv2d | nn.ConvTranspose2d)]
    assert len(weighted) == 6
    # No skips: the decoder sees only the code, so the output is a function of the code alone.
    x = torch.rand(2, 3, 64, 64)
    small = ConvAutoencoder(1152, size=64)
    with torch.no_grad():
        assert torch.equal(small(x), small.decode(small.encode(x)))
        assert small.encode(x).shape == (2, 32)  # 8 channels on a 2 x 2 grid at 64 px


def test_bad_sizes_are_clear_errors():
    with pytest.raises(InputError, match="multiple of the 144"):
        ConvAutoencoder(1000)
    with pytest.raises(InputError, match="multiple of 16"):
        ConvAutoencoder(1152, size=40)
    with pytest.raises(InputError, match="expects 64 x 64"):
        ConvAutoencoder(1152, size=64).encode(torch.rand(1, 3, 96, 96))
    with pytest.raises(InputError, match=r"\(n, 32\)"):
        ConvAutoencoder(1152, size=64).decode(torch.rand(1, 33))
    with pytest.raises(InputError, match="bottleneck"):
        AutoencodeSettings.build(bottleneck="288,abc")


def test_quality_metrics_match_references():
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 32, 32, generator=gen)
    y = (x + 0.1 * torch.randn(x.shape, generator=gen)).clamp(0, 1)
    ours = ssim_per_image(x, y).numpy()
    ref = [structural_similarity(x[i].numpy(), y[i].numpy(), channel_axis=0, data_range=1,
                                 gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
           for i in range(2)]  # fmt: skip
    np.testing.assert_allclose(ours, ref, atol=1e-4)
    mse = ((x - y) ** 2).flatten(1).mean(1)
    np.testing.assert_allclose(psnr_per_image(x, y), -10 * torch.log10(mse), rtol=1e-5)
    assert torch.allclose(r2_per_image(x, x), torch.ones(2))
    assert ssim_per_image(x, x).min() > 0.999


def test_input_modes():
    x = torch.randint(0, 256, (2, 3, 8, 8), dtype=torch.uint8)
    single = to_unit_range(x, "single")
    assert torch.equal(single[:, 1], single[:, 0]) and single.max() <= 1
    assert torch.allclose(to_unit_range(x, "time"), x.float() / 255)


def test_recommendation_takes_the_smallest_good_size_and_skips_identity():
    sweep = pd.DataFrame({"bottleneck": [288, 576, 1152, 2304],
                          "val_ssim": [0.50, 0.68, 0.70, 0.71],
                          "identity_like": [False, False, False, True]})  # fmt: skip
    assert recommend_bottleneck(sweep, ssim_tolerance=0.02) == 1152  # 0.68 < 0.71 - 0.02
    assert recommend_bottleneck(sweep, ssim_tolerance=0.05) == 576
    assert recommend_bottleneck(sweep.assign(identity_like=True), ssim_tolerance=0.0) == 2304
    probes = probe_images(48)
    assert probes["noise"].shape == (8, 3, 48, 48) and probes["checkerboard"].shape[1:] == (
        3,
        48,
        48,
    )


def test_training_writes_figures_history_features_and_resumes(tmp_path):
    store = make_store(tmp_path / "store", size=48, per_patient=6)  # 48 px: a 1 x 1 grid
    run = RunLayout(tmp_path / "run")
    settings = AutoencodeSettings(
        bottleneck=(288, 1152), epochs=1, batch_size=8, n_preview=3, precision="fp32"
    )
    result = autoencode(store, run.root, settings, quiet=True)
    assert set(result["models"]) == {"288", "1152"}
    for size, features in ((288, 2), (1152, 8)):
        layout = run.autoencoder_model(size)
        assert [p.name for p in layout.reconstructions.iterdir()] == ["epoch_001.png"]
        assert layout.reconstruction_png(1).read_bytes()[:8] == PNG_MAGIC
        codes = np.load(layout.features)
        index = pd.read_parquet(layout.features_index)
        assert codes.shape == (48, features) and len(index) == 48  # 8 patients x 6 frames
        assert {"video_id", "row", "patient_id", "label", "split", "camera"} <= set(index)
        assert set(index["split"]) == {"train", "val", "test"}
        quality = json.loads(layout.quality.read_text())
        assert {"noise_r2", "frame_r2", "checkerboard_ssim", "identity_like"} <= set(quality)
    sweep = json.loads(run.autoencoder_sweep.read_text())
    assert sweep["recommended_bottleneck"] in (288, 1152) and len(sweep["sizes"]) == 2
    assert run.autoencoder_sweep_png.read_bytes()[:8] == PNG_MAGIC

    model, saved = load_autoencoder(run.root, 288)
    assert saved.bottleneck == (288, 1152)
    first = run.autoencoder_model(288)
    index = pd.read_parquet(first.features_index)
    from sepsiscope.data.store import FrameStore

    x = torch.from_numpy(FrameStore(store).read_table(index.iloc[:3]))
    with torch.no_grad():
        again = model.encode(to_unit_range(x, saved.input_mode)).numpy()
    np.testing.assert_allclose(again, np.load(first.features)[:3], atol=1e-4)

    # Resume one size for a second epoch through the CLI; the first epoch stays as it was.
    before = pd.read_csv(first.history)
    out = runner.invoke(
        app,
        [
            "autoencode",
            "--store",
            str(store),
            "--out",
            str(run.root),
            "--bottleneck",
            "288",
            "--epochs",
            "2",
            "--resume",
            "--json",
        ],
    )  # fmt: skip  (no --quiet: the bar must stay off stdout)
    assert out.exit_code == 0, out.output
    reply = json.loads(out.stdout)
    assert reply["trained"] == [288] and set(reply["models"]) == {"288", "1152"}  # sweep kept
    recommended = str(reply["recommended_bottleneck"])
    assert reply["feature_dim"] == reply["models"][recommended]["feature_dim"]
    history = pd.read_csv(first.history)
    assert list(history["epoch"]) == [1, 2]
    pd.testing.assert_frame_equal(history.iloc[:1], before)
    assert history[["train_mse", "val_mse", "val_psnr_db", "val_ssim"]].notna().all().all()
    # Mean PSNR of images >= PSNR of the mean MSE (Jensen): they were computed per image.
    assert (history["val_psnr_db"] >= -10 * np.log10(history["val_mse"]) - 1e-4).all()
    assert sorted(p.name for p in first.reconstructions.iterdir()) == [
        "epoch_001.png",
        "epoch_002.png",
    ]


def test_store_without_validation_frames_is_a_clear_error(tmp_path):
    store = make_store(tmp_path / "store", per_patient=2)
    from sepsiscope._io import write_json
    from sepsiscope.layout import StoreLayout

    write_json(StoreLayout(store).splits, {"train": ["p0", "p1"], "val": [], "test": []})
    out = runner.invoke(app, ["autoencode", "--store", str(store), "--out", str(tmp_path / "r")])
    assert out.exit_code == 2 and "val split has no usable frames" in out.output
