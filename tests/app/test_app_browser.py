"""End to end in a real headless browser (Debian's chromium, driven by Playwright): upload a
simulated video, wait for its result, change a vessel's flow category, see PPV change, export.

`.ci/run` installs chromium; on a machine without it the test is skipped, except in CI (CI=true)
where a missing browser is a failure.
"""

from __future__ import annotations

import io
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pandas as pd
import pytest

from sepsiscope.simulate import SimulateSettings, simulate_cohort
from tests._predict_fixtures import make_run

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.slow

if CHROMIUM is None and os.environ.get("CI") != "true":
    pytest.skip("no chromium on this machine (.ci/run installs it)", allow_module_level=True)
sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """``sepsiscope serve RUN`` in its own process, as a user starts it."""
    root = tmp_path_factory.mktemp("browser")
    run = make_run(root / "run")
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "sepsiscope", "serve", str(run), "--data", str(root / "data"),
         "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            httpx.get(url + "/api/videos", timeout=1)
            break
        except httpx.HTTPError:
            if process.poll() is not None:
                pytest.fail(process.stdout.read())
            time.sleep(0.2)
    yield url, root
    process.terminate()
    process.wait(20)


def test_upload_review_and_export_in_a_browser(server, tmp_path: Path) -> None:
    url, _ = server
    settings = SimulateSettings(patients=1, videos_per_patient=1, seconds=2.0, width=240,
                                height=180, seed=3)  # fmt: skip
    simulate_cohort(tmp_path / "cohort", settings, quiet=True)
    video = next((tmp_path / "cohort" / "videos").iterdir())

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(url + "/")
        page.fill("input[name=patient_id]", "E2E-1")
        page.fill("input[name=site]", "1")
        page.fill("input[name=camera]", "microscan")
        page.set_input_files("#files", str(video))
        page.click("#upload-button")
        page.wait_for_selector("#upload-log li.ok a", timeout=60_000)
        page.click("#upload-log li.ok a")
        # the page follows the job (server-sent events) and reloads when it is done
        page.wait_for_selector("#vessels polyline.hit", timeout=180_000)
        video_id = page.evaluate("document.body.dataset.videoId")

        def ppv_shown() -> str:
            return page.inner_text('#metrics tr[data-metric="ppv_percent"] .value')

        before = ppv_shown()
        data = httpx.get(f"{url}/api/videos/{video_id}/vessels").json()
        target = _clickable_perfused_vessel(data)
        box = page.locator("#vessels").bounding_box()
        row, col = target["points"][len(target["points"]) // 2]
        page.mouse.click(box["x"] + col * box["width"] / data["width"],
                         box["y"] + row * box["height"] / data["height"])  # fmt: skip
        page.wait_for_selector("#selected:not([hidden])")
        assert page.inner_text("#selected-text").startswith(f"Vessel {target['segment']}:")
        page.click('#selected button[data-flow="none"]')
        page.wait_for_function(
            "([sel, old]) => document.querySelector(sel).textContent.trim() !== old",
            arg=['#metrics tr[data-metric="ppv_percent"] .value', before], timeout=30_000,
        )  # fmt: skip
        after = ppv_shown()
        assert "edited" in after
        assert float(after.split()[0]) < float(before.split()[0])
        page.screenshot(path=str(tmp_path / "video.png"), full_page=True)

        with page.expect_download() as download:
            page.click("#export-csv")
        table = pd.read_csv(io.StringIO(Path(download.value.path()).read_text()))
        ppv = table.set_index("metric").loc["ppv_percent"]
        assert bool(ppv["edited"]) and ppv["value"] == pytest.approx(
            float(after.split()[0]), abs=0.01
        )
        assert not errors, errors
        browser.close()


def _clickable_perfused_vessel(data: dict) -> dict:
    """A perfused small vessel whose middle point is at least 8 px from every other vessel (so
    a click there selects it and no other)."""
    import numpy as np

    vessels = data["vessels"]
    for v in vessels:
        if not v["small"] or v["flow"] not in ("continuous", "sluggish") or len(v["points"]) < 3:
            continue
        middle = np.array(v["points"][len(v["points"]) // 2])
        others = [np.array(o["points"]) for o in vessels if o["segment"] != v["segment"]]
        if all(np.min(np.linalg.norm(o - middle, axis=1)) > 8 for o in others):
            return v
    pytest.fail("no isolated perfused small vessel in the simulated video")
