"""The web app: time from upload to first result, and page response times under 4 uploads.

Starts ``sepsiscope serve RUN`` (1 worker process) on a fresh data folder, uploads one simulated
10-s 640x480 video and times: the upload's answer (stored and decoded), the metrics (measure
done) and the whole job (predict and Grad-CAM too). Then uploads 4 copies at once and, while they
are received and processed, requests the project page and a video's page every 0.2 s, timing
each answer. Prints a markdown table for docs/benchmarks.md.

    python benchmarks/bench_app.py --run sepsiscope-demo/run
"""

from __future__ import annotations

import argparse
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_predict import _machine  # noqa: E402


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _upload(url: str, video: Path, patient: str) -> tuple[str, float]:
    start = time.perf_counter()
    r = httpx.post(f"{url}/api/videos", content=video.read_bytes(), timeout=600,
                   params={"filename": video.name, "patient_id": patient, "site": "1",
                           "um_per_px": 1.0, "fps": 25})  # fmt: skip
    r.raise_for_status()
    return r.json()["video_id"], time.perf_counter() - start


def _wait(url: str, video_id: str, *, until_step_after: str | None = None) -> float:
    start = time.perf_counter()
    while True:
        v = httpx.get(f"{url}/api/videos/{video_id}", timeout=60).json()["video"]
        if v["state"] in ("done", "failed"):
            return time.perf_counter() - start
        if until_step_after and v["state"] == "running" and v["step"] not in ("", until_step_after):
            return time.perf_counter() - start
        time.sleep(0.1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True, help="a trained run (the demo's)")
    args = parser.parse_args()
    from sepsiscope.simulate import SimulateSettings, simulate_cohort

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        settings = SimulateSettings(patients=1, videos_per_patient=1, seconds=10.0, width=640,
                                    height=480, seed=7)  # fmt: skip
        simulate_cohort(root / "cohort", settings, quiet=True)
        video = next((root / "cohort" / "videos").iterdir())
        size_mb = video.stat().st_size / 1e6
        port = _port()
        url = f"http://127.0.0.1:{port}"
        server = subprocess.Popen(
            [sys.executable, "-m", "sepsiscope", "serve", str(args.run), "--data",
             str(root / "data"), "--port", str(port)], stdout=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            for _ in range(300):
                try:
                    httpx.get(url + "/api/videos", timeout=1)
                    break
                except httpx.HTTPError:
                    time.sleep(0.2)
            video_id, upload_s = _upload(url, video, "first")
            metrics_s = upload_s + _wait(url, video_id, until_step_after="measure")
            done_s = upload_s + _wait(url, video_id) + (metrics_s - upload_s)
            latencies: list[float] = []
            stop = threading.Event()

            def poll() -> None:
                pages = ["/", f"/videos/{video_id}", f"/api/videos/{video_id}"]
                i = 0
                while not stop.is_set():
                    start = time.perf_counter()
                    httpx.get(url + pages[i % len(pages)], timeout=60).raise_for_status()
                    latencies.append(time.perf_counter() - start)
                    i += 1
                    time.sleep(0.2)

            poller = threading.Thread(target=poll)
            poller.start()
            uploads: list[tuple[str, float]] = []

            def upload_copy(n: int) -> None:
                uploads.append(_upload(url, video, f"c{n}"))

            threads = [threading.Thread(target=upload_copy, args=(n,)) for n in range(4)]
            start = time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            for vid, _ in uploads:
                _wait(url, vid)
            all_four_s = time.perf_counter() - start
            stop.set()
            poller.join()
        finally:
            server.terminate()
            server.wait(30)
    print(f"Web app, 1 worker process; {_machine('cpu')}, {platform.node()}; one simulated "
          f"10-s 640x480 video ({size_mb:.1f} MB), run {args.run}\n")  # fmt: skip
    print("| step | seconds |\n|---|---:|")
    print(f"| upload answered (stored, decoded, queued) | {upload_s:.1f} |")
    print(f"| first result: metrics shown (measure done) | {metrics_s:.1f} |")
    print(f"| whole job: metrics, probability, Grad-CAM | {done_s:.1f} |")
    print(f"| 4 concurrent uploads, all done | {all_four_s:.1f} |")
    lat = sorted(1000 * x for x in latencies)
    print(f"\nPage and API responses during the 4 uploads ({len(lat)} requests): median "
          f"{statistics.median(lat):.0f} ms, p95 {lat[int(0.95 * (len(lat) - 1))]:.0f} ms, "
          f"max {lat[-1]:.0f} ms")  # fmt: skip


if __name__ == "__main__":
    main()
