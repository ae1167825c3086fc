"""Reading and writing videos and image stacks, on real files written here."""

from __future__ import annotations

import itertools
import logging
from fractions import Fraction

import cv2
import numpy as np
import pytest
from _ingest_media import png_claiming
from hypothesis import given, settings
from hypothesis import strategies as st

from sepsiscope.data.video import (
    VideoError,
    field_differences,
    field_sample,
    image_files,
    infer_field_order,
    iter_frames,
    natural_key,
    plausible_fps,
    probe_video,
    read_frames,
    resolve_fps,
    split_fields,
    to_uint8,
    write_video,
)


def _frames(n: int = 12, h: int = 96, w: int = 128) -> np.ndarray:
    rng = np.random.default_rng(0)
    frames = np.full((n, h, w), 170, np.uint8)
    frames += rng.integers(0, 6, frames.shape, dtype=np.uint8)
    for t in range(n):
        frames[t, 40:48, :] = 40  # a dark horizontal vessel
        frames[t, :, 10 + 4 * t : 14 + 4 * t] = 60  # a moving dark bar
    return frames


@pytest.mark.parametrize("name", ["clip.avi", "clip.mp4", "clip.mov", "clip.tif", "frames"])
def test_roundtrip_keeps_content(tmp_path, name):
    frames = _frames()
    path = write_video(tmp_path / name, frames, fps=25.0)
    info = probe_video(path)
    back = read_frames(path)
    assert back.shape == frames.shape and back.dtype == np.uint8
    assert (info.width, info.height, info.n_frames) == (128, 96, 12)
    lossy = name.endswith((".avi", ".mp4", ".mov"))
    assert np.abs(back.astype(int) - frames).mean() < (4 if lossy else 0.01)
    assert back[:, 44, :].mean() < back[:, 80, :].mean() - 80  # the vessel stays dark
    if lossy:
        assert info.fps == pytest.approx(25.0)
    else:
        assert info.fps is None


def test_every_and_stop_select_frames(tmp_path):
    path = write_video(tmp_path / "clip.avi", _frames(), fps=25.0)
    indices = [i for i, _ in iter_frames(path, every=3, stop=10)]
    assert indices == [0, 3, 6, 9]


def test_colour_and_16_bit_inputs_become_grey(tmp_path):
    import cv2
    import tifffile

    folder = tmp_path / "rgb"
    folder.mkdir()
    rgb = np.zeros((32, 48, 3), np.uint8)
    rgb[..., 1] = 200  # pure green
    cv2.imwrite(str(folder / "f0.png"), rgb[..., ::-1])
    grey = read_frames(folder)
    assert grey.shape == (1, 32, 48) and abs(int(grey[0, 0, 0]) - round(0.587 * 200)) <= 1

    stack = np.full((3, 32, 48), 40000, np.uint16)
    tifffile.imwrite(tmp_path / "deep.tif", stack, photometric="minisblack")
    deep = read_frames(tmp_path / "deep.tif")
    assert deep.dtype == np.uint16 and probe_video(tmp_path / "deep.tif").bit_depth == 16
    assert to_uint8(deep)[0, 0, 0] == round(40000 * 255 / 65535)


@pytest.mark.parametrize(
    ("content", "reason"),
    [(b"", "empty file"), (b"this is not a video\n" * 50, "not a readable video")],
)
def test_unreadable_files_name_file_and_reason(tmp_path, content, reason):
    path = tmp_path / "bad.avi"
    path.write_bytes(content)
    with pytest.raises(VideoError, match=reason) as err:
        probe_video(path)
    assert "bad.avi" in str(err.value)


def test_missing_file(tmp_path):
    with pytest.raises(VideoError, match="file not found"):
        list(iter_frames(tmp_path / "nope.mp4"))


@pytest.mark.parametrize("name", ["clip.avi", "clip.mp4"])
def test_luma_fast_path_equals_ffmpeg_grey_conversion(tmp_path, name):
    import av

    frames = np.random.default_rng(1).integers(0, 256, (4, 64, 96)).astype(np.uint8)
    path = write_video(tmp_path / name, frames, fps=25.0)
    with av.open(str(path)) as container:
        reference = np.stack([f.to_ndarray(format="gray") for f in container.decode(video=0)])
    np.testing.assert_array_equal(read_frames(path), reference)


# -- frame rate: one fallback (given, else the container's plausible rate, else a clear error) --

given_rates = st.floats(min_value=0.1, max_value=1e5, allow_nan=False)
missing_given = st.sampled_from([None, float("nan"), 0.0, -25.0, float("inf"), float("-inf")])
plausible_rates = st.floats(min_value=0.01, max_value=999.99, allow_nan=False)
absurd_rates = st.one_of(
    st.sampled_from([None, 0, 0.0, float("nan"), float("inf"), -30.0, 1000, 90000]),
    st.floats(min_value=1000, max_value=1e9),
)


@given(given_rates, st.one_of(plausible_rates, absurd_rates))
def test_a_given_rate_wins_and_the_file_is_not_asked(rate, container):
    def probe():
        raise AssertionError("the container must not be probed when a rate is given")

    assert resolve_fps(rate, probe, source="v.avi", hint="give --fps") == rate
    assert resolve_fps(rate, container, source="v.avi", hint="give --fps") == rate


@given(missing_given, plausible_rates)
def test_a_missing_given_rate_falls_back_on_a_plausible_container_rate(rate, container):
    assert resolve_fps(rate, container, source="v.avi", hint="give --fps") == container
    assert resolve_fps(rate, lambda: container, source="v.avi", hint="give --fps") == container


@given(missing_given, absurd_rates)
def test_no_usable_rate_is_an_input_error_naming_file_and_remedy(rate, container):
    with pytest.raises(VideoError, match=r"^clip\.mkv: no frame rate in the file.*; give --fps$"):
        resolve_fps(rate, container, source="clip.mkv", hint="give --fps")
    assert VideoError("x").exit_code == 2


def test_an_absurd_container_rate_is_named_in_the_message():
    with pytest.raises(VideoError, match=r"it reports 90000 fps, not a camera's rate\)"):
        resolve_fps(None, 90000, source="a.ts", hint="give fps in the manifest")
    with pytest.raises(VideoError) as none:
        resolve_fps(None, None, source="a.tif", hint="give fps in the manifest")
    assert str(none.value) == "a.tif: no frame rate in the file; give fps in the manifest"


def test_plausible_fps_reads_fractions_and_rejects_time_bases():
    assert plausible_fps(Fraction(30000, 1001)) == pytest.approx(29.97, abs=1e-3)
    assert plausible_fps(Fraction(25, 1)) == 25.0
    assert [plausible_fps(r) for r in (None, 0, float("nan"), 1000, 90000, "x")] == [None] * 6


def test_probe_gives_the_container_rate_to_resolve(tmp_path):
    path = write_video(tmp_path / "clip.mkv", _frames(4), fps=30.0)
    rate = resolve_fps(None, probe_video(path).fps, source=str(path), hint="give --fps")
    assert rate == pytest.approx(30.0)


def test_a_live_source_without_a_plausible_rate_assumes_25_and_warns(caplog):
    from sepsiscope.apply.sources import _live_rate

    with caplog.at_level(logging.WARNING, logger="sepsiscope.apply.sources"):
        assert _live_rate("0", None, 90000) == 25.0
        assert _live_rate("0", None, 0.0) == 25.0
    assert caplog.text.count("assuming 25 fps; pass --fps") == 2
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="sepsiscope.apply.sources"):
        assert _live_rate("0", 50.0, 90000) == 50.0
        assert _live_rate("rtsp://cam", None, Fraction(30000, 1001)) == pytest.approx(29.97, 1e-3)
    assert not caplog.text


def test_unpadded_frame_numbers_are_read_in_numeric_order(tmp_path):
    import cv2

    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(1, 13):  # Frame1.PNG ... Frame12.PNG; each frame's grey level is its number
        cv2.imwrite(str(folder / f"Frame{i}.PNG"), np.full((8, 10), 10 * i, np.uint8))
    (folder / "notes.txt").write_text("not a frame")
    (folder / "._Frame1.PNG").write_bytes(b"\x00\x05\x16\x07")  # macOS resource file
    (folder / "sub.png").mkdir()  # a folder named like an image is not a frame
    names = [p.name for p in image_files(folder)]
    assert names == [f"Frame{i}.PNG" for i in range(1, 13)]
    levels = read_frames(folder)[:, 0, 0].tolist()
    assert levels == [10 * i for i in range(1, 13)]
    assert probe_video(folder).n_frames == 12


@given(st.lists(st.integers(0, 10**6), min_size=1, max_size=30, unique=True))
def test_natural_key_orders_numbered_names_by_their_number(numbers):
    names = [f"img_{n}.tif" for n in numbers]
    assert sorted(names, key=natural_key) == [f"img_{n}.tif" for n in sorted(numbers)]
    assert natural_key("IMG_2.TIF") == natural_key("img_2.tif")


def test_a_stray_image_beside_folders_of_frames_is_not_a_video(tmp_path):
    from sepsiscope.data.video import videos_in_folder

    frames = np.zeros((5, 16, 16), np.uint8)
    write_video(tmp_path / "p1", frames, 25.0)
    write_video(tmp_path / "p2", frames, 25.0)
    cv2.imwrite(str(tmp_path / "overview.jpg"), frames[0])
    videos, skipped = videos_in_folder(tmp_path)
    assert videos == [tmp_path / "p1", tmp_path / "p2"] and skipped == [tmp_path / "overview.jpg"]
    for i in range(10):  # ten or more loose images are a video of their own
        cv2.imwrite(str(tmp_path / f"f{i}.png"), frames[0])
    assert videos_in_folder(tmp_path)[0] == [tmp_path]


def test_a_frame_header_claiming_huge_dimensions_is_refused_before_decoding(tmp_path):
    import resource

    folder = tmp_path / "frames"
    write_video(folder, np.full((4, 32, 32), 100, np.uint8), 25)
    png_claiming(folder / "frame_00002.png", 30000, 30000)  # replaces a real frame
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(VideoError, match=r"30000x30000 px \(900 megapixels\) are beyond the limit"):
        list(iter_frames(folder))
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 100  # 900 MB would have been decoded


def test_a_header_claiming_too_many_frames_is_refused(tmp_path, monkeypatch):
    from sepsiscope.data import video

    path = write_video(tmp_path / "v.avi", np.full((30, 32, 32), 100, np.uint8), 25)
    monkeypatch.setattr(video, "MAX_FRAMES", 20)
    with pytest.raises(VideoError, match=r"claims 30 frames, beyond the limit of 20"):
        probe_video(path)


def test_decoding_that_makes_no_progress_is_stopped(tmp_path, monkeypatch):
    """H.264 with B-frames holds its first pictures back for several packets: with no patience
    at all (a negative SEPSISCOPE_MAX_STALL_S), those packets count as no progress."""
    from sepsiscope.data import video

    frames = np.random.default_rng(0).integers(0, 255, (24, 64, 64), dtype=np.uint8)
    path = write_video(tmp_path / "v.mp4", frames, 25)
    assert len(list(iter_frames(path))) == 24  # the default patience reads it whole
    monkeypatch.setattr(video, "MAX_STALL_S", -1)
    with pytest.raises(VideoError, match=r"v.mp4: decoding made no progress for -1 s"):
        list(iter_frames(path))


def test_the_fields_of_an_interlaced_frame_come_back_in_time_order_at_full_height():
    early = np.tile(np.arange(0, 80, 10, dtype=np.uint8)[:, None], (1, 3))  # rows 0, 10, .., 70
    late = early + 100  # the same scene 20 ms later, brighter
    woven = early.copy()
    woven[1::2] = late[1::2]  # even rows taken first (top field first)
    first, second = split_fields(woven, top_first=True)
    assert (first[0::2] == early[0::2]).all() and (second[1::2] == late[1::2]).all()
    # each field's missing rows between its own: the linear ramp comes back, clamped at the edge
    assert first[:, 0].tolist() == [0, 10, 20, 30, 40, 50, 60, 60]
    assert second[:, 0].tolist() == [110, 110, 120, 130, 140, 150, 160, 170]
    assert first.dtype == np.uint8 and first.shape == woven.shape
    later_first = split_fields(woven, top_first=False)
    assert (later_first[0] == second).all() and (later_first[1] == first).all()
    with pytest.raises(VideoError, match="no two fields"):
        split_fields(woven[:1])


def _drifting_fields(n: int, drift: tuple[float, float], seed: int = 0) -> np.ndarray:
    """``n`` noisy uint8 images (96 x 128) of a smooth texture drifting ``drift`` (rows, cols) px
    each, from the middle of a texture large enough for 40 of them at 3 px."""
    rng = np.random.default_rng(seed)
    texture = cv2.GaussianBlur(rng.uniform(0, 255, (336, 368)).astype(np.float32), (0, 0), 3)
    texture = 60 + 140 * (texture - texture.min()) / np.ptp(texture)
    fields = []
    for t in range(n):
        shift = np.float32([[1, 0, -drift[1] * t], [0, 1, -drift[0] * t]])
        moved = cv2.warpAffine(texture, shift, (368, 336), flags=cv2.INTER_LINEAR)
        fields.append(moved[120:216, 120:248] + rng.normal(0, 2, (96, 128)))
    return np.clip(np.rint(fields), 0, 255).astype(np.uint8)


def _field_order(frames: np.ndarray) -> str | None:
    samples = [field_sample(frame) for frame in frames]
    return infer_field_order(field_differences(a, b) for a, b in itertools.pairwise(samples))


@pytest.mark.parametrize("drift", [(0.0, 1.0), (0.2, 0.0), (1.5, -2.5), (0.0, -3.0)])
def test_the_order_of_interlaced_fields_is_told_from_the_frames(drift):
    """A scene at 50 fields/s woven into 25 frames/s, even rows first or odd rows first, or
    taken as every other field (progressive): the order comes back from how the fields move."""
    fields = _drifting_fields(40, drift)
    top_first, bottom_first = fields[0::2].copy(), fields[1::2].copy()
    top_first[:, 1::2] = fields[1::2, 1::2]  # odd rows 20 ms after the even ones
    bottom_first[:-1, 0::2] = fields[2::2, 0::2]  # even rows 20 ms after the odd ones
    bottom_first = bottom_first[:-1]
    assert _field_order(top_first) == "top_first"
    assert _field_order(bottom_first) == "bottom_first"
    assert _field_order(fields[0::2]) == "progressive"
    assert _field_order(fields[0::2, ::-1]) == "progressive"  # upside down: still one moment


def test_too_little_motion_tells_no_field_order():
    still = np.repeat(_drifting_fields(1, (0, 0)), 20, axis=0)
    noisy = np.clip(still + np.random.default_rng(1).normal(0, 2, still.shape), 0, 255)
    assert _field_order(noisy.astype(np.uint8)) is None
    assert _field_order(still[:3]) is None  # too few frames to compare two halves
    same, forward, backward, pairing = field_differences(*[field_sample(still[0])] * 2)
    assert same == forward == backward > 0 and pairing < 0.1  # interpolation alone
    assert field_sample(still[0, :3]) is None  # 3 rows: no two lines of a field
    assert field_differences(None, field_sample(still[1])) == (0.0, 0.0, 0.0, 0.0)
    # a light brightening 1 % a frame over a still scene is no motion
    ramp = np.clip(still * np.linspace(1, 1.2, 20)[:, None, None] + noisy - still, 0, 255)
    assert _field_order(ramp.astype(np.uint8)) is None


def test_field_verdicts_from_the_two_halves_of_a_clip():
    top, interlaced_other_way = (1.0, 1.0, 2.0, 0.0), (1.0, 2.0, 1.0, 0.0)
    progressive, still = (1.0, 2.0, 2.0, 0.0), (1.0, 1.0, 1.0, 0.0)
    assert infer_field_order([top] * 4) == "top_first"
    assert infer_field_order([interlaced_other_way] * 4) == "bottom_first"
    assert infer_field_order([top] * 3 + [progressive] * 3) == "unclear"  # halves disagree
    assert infer_field_order([top] * 3 + [still] * 3) == "unclear"
    assert infer_field_order([progressive] * 3 + [still] * 3) == "progressive"
    assert infer_field_order([(1.0, 2.5, 0.5, 0.0)] * 4) == "unclear"  # no order explains it
    assert infer_field_order([top[:3] + (0.9,)] * 4) == "unclear"  # lines in pairs


def test_one_field_drawn_twice_is_never_read_as_fields():
    """A grabber that keeps one field and doubles its lines: the "fields" are half a line
    apart in space, which vertical drift would make look like 20 ms apart in time; JPEG at
    quality 75 blurs the pairs. Woven fields drifting a line per field look the same."""
    for drift in [(3.0, 0.0), (-3.0, 0.0), (2.0, 1.0), (1.0, 0.5)]:
        frames = _drifting_fields(20, drift)
        frames[:, 1::2] = frames[:, 0::2]
        assert _field_order(frames) == "unclear"
        jpeg = [cv2.imencode(".jpg", f, [cv2.IMWRITE_JPEG_QUALITY, 75])[1] for f in frames]
        assert _field_order(np.stack([cv2.imdecode(j, cv2.IMREAD_GRAYSCALE) for j in jpeg])) in (
            "unclear", "progressive", None)  # fmt: skip
    fields = _drifting_fields(40, (1.0, 0.0))
    woven = fields[0::2].copy()
    woven[:, 1::2] = fields[1::2, 1::2]
    assert _field_order(woven) in ("top_first", "unclear")


@settings(max_examples=25, deadline=None)
@given(st.floats(-2.5, 2.5), st.floats(-2.5, 2.5), st.integers(0, 2**16), st.floats(0.0, 1.0))
def test_no_drift_reads_fields_in_the_wrong_order_or_progressive_frames_as_fields(
    dy: float, dx: float, seed: int, still_share: float
):
    """Whatever the scene's drift and however much of the clip is still: progressive frames are
    never taken for fields, nor fields for the other order (the two costly mistakes; fields
    read as frames, or not told, are measured as frames)."""
    fields = _drifting_fields(40, (dy, dx), seed=seed)
    moving = int(19 * (1 - still_share)) * 2 + 1  # the rest of the clip holds still
    fields[moving:] = fields[moving]
    top_first = fields[0::2].copy()
    top_first[:, 1::2] = fields[1::2, 1::2]
    assert _field_order(fields[0::2]) not in ("top_first", "bottom_first")
    assert _field_order(top_first) != "bottom_first"
    assert _field_order(top_first[:, ::-1]) != "top_first"  # upside down: bottom first
