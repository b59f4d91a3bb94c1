"""Per-picture latency of ImageClassifier, with and without OCR, on common picture sizes.

    .venv/bin/python benchmarks/images.py [--runs 20] [--threads 1] [--stages]
    .venv/bin/python benchmarks/images.py --nsfw-sweep 200

Pictures: the committed fixtures (tests/fixtures/images) scaled to common sizes and encoded
as chat apps send them: a 1080x1920 JPEG poster with a QR code and ad text, a 1080x1920 text
poster, a 1920x1080 JPEG photo, a 720x1280 PNG chat screenshot. One process, one call at a
time, base64 in as the HTTP contract sends it, flood counting on (in memory); the text model
is a tiny release built on the spot (its size does not matter here).
Modes: `no OCR` (ocr="never"), `OCR auto` (the default: OCR only when the text check says
the picture carries text). `--stages` times each step on the poster; `--nsfw-sweep N` scores
N generated skin-tone and landscape pictures with the NSFW detector, to check the threshold's
margin on negatives. Prints Markdown.
"""

from __future__ import annotations

import argparse
import base64
import importlib.util
import io
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.arguments import at_least_one  # noqa: E402
from models.image import ImageClassifier, ImageSettings, MemoryFloodCounter  # noqa: E402
from models.image.classify import small_copy  # noqa: E402
from models.image.decode import decode_image  # noqa: E402
from models.image.nsfw import DEFAULT_CONFIG, NsfwDetector, NsfwUnavailableError  # noqa: E402
from models.image.ocr import OcrEngine, has_text  # noqa: E402
from models.image.phash import image_hash  # noqa: E402
from models.image.qr import scan  # noqa: E402
from models.paths import REPO_ROOT  # noqa: E402

FIXTURES = REPO_ROOT / "tests" / "fixtures" / "images"


def _encode(img: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **({"quality": 85} if fmt == "JPEG" else {"optimize": True}))
    return buf.getvalue()


def pictures() -> list[tuple[str, bytes]]:
    """(name, encoded bytes) of the benchmark pictures."""

    def scaled(name: str, size: tuple[int, int]) -> Image.Image:
        return Image.open(FIXTURES / name).convert("RGB").resize(size, Image.Resampling.LANCZOS)

    return [
        ("poster QR+ad 1080x1920 JPEG", _encode(scaled("poster_qr_ad.jpg", (1080, 1920)), "JPEG")),
        ("poster text 1080x1920 JPEG", _encode(scaled("poster_text_ad.jpg", (1080, 1920)), "JPEG")),
        ("photo 1920x1080 JPEG", _encode(scaled("photo_landscape.jpg", (1920, 1080)), "JPEG")),
        ("screenshot 720x1280 PNG", (FIXTURES / "screenshot_chat.png").read_bytes()),
    ]


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def _time(fn: Callable[[], object], runs: int, warmup: int = 2) -> tuple[list[float], list[float]]:
    """Wall-clock and CPU milliseconds of each run. CPU time is the process's: with one
    ONNX Runtime thread it is this call's work, and it does not grow when other processes
    compete for the cores (wall time does)."""
    for _ in range(warmup):
        fn()
    wall, cpu = [], []
    for _ in range(runs):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        wall.append((time.perf_counter() - start) * 1000)
        cpu.append((time.process_time() - start_cpu) * 1000)
    return wall, cpu


def _text_model():  # type: ignore[no-untyped-def]
    from models.release import load_latest
    from training.tiny import build_tiny_release

    root = Path(tempfile.mkdtemp(prefix="qunguard-bench-"))
    build_tiny_release(root / "2026.01.01-1")
    return load_latest(root)


def latency_table(runs: int, threads: int) -> None:
    model = _text_model()
    modes = {
        "no OCR": ImageSettings(ocr="never", threads=threads),
        "OCR auto": ImageSettings(ocr="auto", threads=threads),
    }
    classifiers = {
        mode: ImageClassifier(model, flood_counter=MemoryFloodCounter(), settings=settings)
        for mode, settings in modes.items()
    }
    nsfw = classifiers["no OCR"].components()["nsfw"] or "unavailable"
    print(f"\nruns per cell: {runs}; ONNX Runtime threads per model: {threads}; NSFW: {nsfw}")
    print("\n| picture | bytes | mode | p50 ms | p99 ms | CPU p50 ms | OCR ran |")
    print("|---|---:|---|---:|---:|---:|---|")
    for name, data in pictures():
        text = base64.b64encode(data).decode()  # as the HTTP contract sends it
        for mode, classifier in classifiers.items():
            result = classifier.classify(text, group_id="bench", user_id="u")
            wall, cpu = _time(lambda c=classifier, t=text: c.classify(t, group_id="bench"), runs)
            print(
                f"| {name} | {len(data):,} | {mode} | {statistics.median(wall):.0f} "
                f"| {_percentile(wall, 99):.0f} | {statistics.median(cpu):.0f} "
                f"| {'yes' if result.ocr_ran else 'no'} |"
            )


def stage_table(runs: int, threads: int) -> None:
    name, data = pictures()[0]
    decoded = decode_image(data)
    frame = decoded.frames[0]
    small = small_copy(frame)
    gray = np.asarray(frame.convert("L"))
    stages: list[tuple[str, Callable[[], object]]] = [
        ("decode (JPEG, base64 not included)", lambda: decode_image(data)),
        ("greyscale + small copy", lambda: (frame.convert("L"), small_copy(frame))),
        ("perceptual hash", lambda: image_hash(small)),
        ("QR (zxing-cpp)", lambda: scan(gray)),
        ("text check", lambda: has_text(gray)),
    ]
    try:
        detector = NsfwDetector.load(DEFAULT_CONFIG, threads=threads)
        stages.append(("NSFW (320n)", lambda: detector.score(small)))
    except NsfwUnavailableError:
        pass
    engine = OcrEngine(threads=threads)
    stages.append(("OCR (RapidOCR)", lambda: engine.read(np.asarray(frame))))
    print(f"\nstages on '{name}' ({decoded.width}x{decoded.height}), {runs} runs each:")
    print("\n| stage | p50 ms | p99 ms | CPU p50 ms |")
    print("|---|---:|---:|---:|")
    for stage, fn in stages:
        wall, cpu = _time(fn, runs)
        print(
            f"| {stage} | {statistics.median(wall):.1f} | {_percentile(wall, 99):.1f} "
            f"| {statistics.median(cpu):.1f} |"
        )


def nsfw_sweep(count: int) -> None:
    try:
        detector = NsfwDetector.load(DEFAULT_CONFIG)
    except NsfwUnavailableError as exc:
        print(f"NSFW detector unavailable: {exc}")
        return
    spec = importlib.util.spec_from_file_location("make_fixtures", FIXTURES / "make_fixtures.py")
    assert spec and spec.loader
    fixtures = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fixtures)
    generators = {
        "skin-tone blobs": fixtures.skin_tone_photo,
        "landscape": fixtures.landscape_photo,
        "shapes": fixtures.shapes_photo,
    }
    print(f"\nNSFW scores of generated negatives (threshold {detector.threshold}):")
    print("\n| pictures | n | max | p99 | p50 | over threshold |")
    print("|---|---:|---:|---:|---:|---:|")
    for kind, make in generators.items():
        scores = [detector.score(make(1000 + seed)).score for seed in range(count)]
        over = sum(s >= detector.threshold for s in scores)
        print(
            f"| {kind} | {count} | {max(scores):.3f} | {_percentile(scores, 99):.3f} "
            f"| {statistics.median(scores):.3f} | {over} |"
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=at_least_one, default=20)
    parser.add_argument(
        "--threads", type=at_least_one, default=1, help="ONNX Runtime intra-op threads"
    )
    parser.add_argument("--stages", action="store_true", help="also time each step")
    parser.add_argument("--nsfw-sweep", type=at_least_one, metavar="N")
    args = parser.parse_args(argv)
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(f"CPU cores: {os.cpu_count()}; load average before: {load}")
    if args.nsfw_sweep:
        nsfw_sweep(args.nsfw_sweep)
        return
    latency_table(args.runs, args.threads)
    if args.stages:
        stage_table(args.runs, args.threads)
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(f"\nload average after: {load}")


if __name__ == "__main__":
    main()
