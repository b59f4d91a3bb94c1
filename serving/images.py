"""Images in POST /v1/classify: a bounded thread pool, flood counting, and the merge rule.

A request with images (`Service.classify_messages`):

1. On the event loop, before any work: the decoded size of all the request's images is
   estimated from their base64 length (3/4 of it); over `max_request_image_bytes` (default
   24 MiB: two pictures at the contract's 10 MiB limit) the request gets 413
   `payload_too_large`. With more than `max_image_queue` images already waiting for or in the
   pool it gets 503 `overloaded` with Retry-After (an idle pool takes any request). Without
   image models (they failed to load) it gets 503 `images_unavailable`.
2. Each image goes to the image pool (`image_workers` threads, default 1): decoding, QR codes,
   NSFW, OCR and the verdict on the picture's text, with the text model the request was admitted
   with (`models.image.ImageClassifier`). The message texts go through the batcher meanwhile.
   Decoding never runs on the event loop, and at most `image_workers` pictures are decoded at
   once, which bounds the memory they take.
3. Only once every image and every text of the request succeeded are the pictures given to the
   flood counter, in message order, on one thread of their own (database I/O): a refused
   request records nothing, so sending it again without the bad picture does not count its
   good pictures twice. With `dry_run` they are only counted, never recorded (the same picture
   twice in one dry run still counts once, as it would for real).

Errors: one bad image fails the whole request, like every other invalid field: the answer is
the image error's status and code (415 `unsupported_image_format`, 413 `image_too_large`, 422
`invalid_image` / `invalid_base64`) with `messages.<i>.image: ...` in the message. The first
failure stops the request: its images still queued are cancelled (those being analysed finish
in the background and are dropped). An unexpected exception while analysing a picture is
logged with its traceback and answered 422 `invalid_image`, never 500; the pool's threads
survive every Python exception, so a broken image fails only its own request. A failing flood
counter (database down) is logged and counted (`qunguard_image_flood_errors_total`), and the
picture is answered with `duplicate_count` 0 rather than failing the moderation.

The merge rule (`merge_image`): a message with an image gets one verdict over its own text and
the picture's text (OCR lines and decoded QR payloads, classified by the image library like a
message):
- `scores`: per text label, the higher of the two scores;
- `labels`: recomputed from those scores against the release thresholds, highest first;
- `evidence`: the text's evidence, then the image's (sources `ocr` with spans into
  `image.ocr_text`, `qrcode` with spans into that code's payload, `model` for NSFW: the
  detector's class, no span), image labels (`nsfw`, `qrcode`, `image_ad`) included;
- `contacts`: the text's, then the picture's not already among them (same type and value);
- `flagged`: true when a text label or an image label (`image.labels`) fires.
The `image` object is the library's (`ImageResult.to_dict`) with the flood count filled in.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from models.fusion import FusionResult
from models.image import (
    FloodCounter,
    ImageClassifier,
    ImageError,
    ImageResult,
    ImageSettings,
    ImageTooLargeError,
    InvalidImageError,
    SqlFloodCounter,
)
from models.image.phash import is_near_duplicate
from models.labels import TEXT_LABELS
from serving.engine import Classified, Engine
from serving.errors import ApiError
from serving.metrics import Metrics
from serving.settings import Settings
from serving.store import Store
from serving.store.db import database_url

if TYPE_CHECKING:
    from models.release import TextModel
    from serving.schemas import Message

log = logging.getLogger("qunguard.images")

# (message index, group, user, picture hash, time) of one picture to count.
_FloodJob = tuple[int, str, str | None, int, datetime]


def merge_image(
    item: Classified, image: ImageResult, thresholds: Mapping[str, float]
) -> Classified:
    """The message's text verdict merged with its picture's (see the module docstring).

    The payload holds the merged flagged, labels, scores, evidence and contacts; the `image`
    object is added by the caller.
    """
    text, seen_text = item.result, image.text
    scores = {label: max(text.scores[label], seen_text.scores[label]) for label in TEXT_LABELS}
    labels = sorted(
        (label for label in TEXT_LABELS if scores[label] >= thresholds[label]),
        key=lambda label: -scores[label],
    )
    contacts = list(text.contacts)
    known = {(c.type, c.value) for c in contacts}
    for contact in seen_text.contacts:
        if (contact.type, contact.value) not in known:
            known.add((contact.type, contact.value))
            contacts.append(contact)
    merged = FusionResult(labels, scores, [*text.evidence, *image.evidence], contacts)
    payload = merged.to_dict()
    payload["flagged"] = bool(labels) or image.flagged
    return Classified(merged, payload)


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


class ImageService:
    """The image models, their thread pool and the flood counter of one running service."""

    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.classifier: ImageClassifier | None = None
        self.flood: FloodCounter | None = None
        self.reason = "the image models are loading"
        self._store: Store | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._flood_pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._pending = 0  # images waiting for or in the pool
        metrics.track_image_queue(lambda: self._pending)

    @property
    def version(self) -> str | None:
        """The image pipeline's version (`model_version.image`), None while unavailable."""
        return None if self.classifier is None else self.classifier.version

    @property
    def pending(self) -> int:
        return self._pending

    def start(self) -> None:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(
                max_workers=self.settings.image_workers, thread_name_prefix="qunguard-image"
            )
            self._flood_pool = ThreadPoolExecutor(
                max_workers=1, thread_name_prefix="qunguard-flood"
            )

    def stop(self) -> None:
        for pool in (self._pool, self._flood_pool):
            if pool is not None:
                pool.shutdown(wait=False, cancel_futures=True)
        self._pool = self._flood_pool = None
        if self._store is not None:
            self._store.close()
            self._store = None

    def load(self, engine: Engine, store: Store | None = None) -> None:
        """In a thread at start-up, after the text model: the image models and the flood counter.

        The flood counter keeps its `image_hashes` table in the service database (`store`, or
        one opened from `data_dir` / `database_url`). A failure leaves images unavailable (503
        `images_unavailable`) or floods uncounted, logged; text keeps being served.
        """
        settings = ImageSettings(
            ocr=self.settings.ocr,
            threads=self.settings.intra_op_threads,
            warmup=self.settings.warmup,
        )
        try:
            classifier = ImageClassifier(
                engine.model, settings=settings, fusion_weights=engine.weights
            )
        except Exception as exc:
            self.reason = f"the image models could not be loaded: {exc}"
            log.exception("image models unavailable")
            return
        try:
            if store is None:
                url = database_url(self.settings.data_dir, self.settings.database_url)
                store = self._store = Store(url)
            self.flood = SqlFloodCounter(engine=store.engine)
        except Exception:
            log.exception("flood counter unavailable: duplicate_count stays 0")
        self.classifier = classifier
        self.reason = ""
        log.info("image models loaded", extra={"components": classifier.components()})

    def use_engine(self, engine: Engine) -> None:
        """After a (re)load: the picture's text is fused with the new release's weights too."""
        if self.classifier is not None:
            self.classifier.fusion_weights = engine.weights

    def admit(self, messages: Sequence[Message], retry_after_s: int) -> None:
        """Refuse a request with images before any work: too many bytes, no models, overload."""
        images = [m.image for m in messages if m.image is not None]
        estimated = sum(len(image) for image in images) * 3 // 4
        limit = self.settings.max_request_image_bytes
        if estimated > limit:
            raise ApiError(
                413,
                "payload_too_large",
                f"the request's images come to about {estimated} bytes decoded, over the "
                f"{limit} bytes a request may carry; send them in several requests",
            )
        retry = {"Retry-After": str(retry_after_s)}
        if self.classifier is None or self._pool is None:
            raise ApiError(503, "images_unavailable", self.reason or "images unavailable", retry)
        if self._pending and self._pending + len(images) > self.settings.max_image_queue:
            self.metrics.rejected.inc()
            raise ApiError(503, "overloaded", f"too many images waiting ({self._pending})", retry)

    async def analyse(
        self, engine: Engine, messages: Sequence[Message]
    ) -> list[ImageResult | None]:
        """Every image of the request through the pool; ApiError for the first bad one."""
        classifier, pool = self.classifier, self._pool
        if classifier is None or pool is None:
            raise ApiError(503, "images_unavailable", self.reason or "images unavailable")
        futures: dict[int, concurrent.futures.Future[ImageResult]] = {}
        for i, message in enumerate(messages):
            if message.image is None:
                continue
            with self._lock:
                self._pending += 1
            try:
                future = pool.submit(self._classify_one, classifier, message.image, engine.model)
            except RuntimeError:  # the pool shut down
                with self._lock:
                    self._pending -= 1
                for queued in futures.values():
                    queued.cancel()
                raise ApiError(503, "unavailable", "the service is shutting down") from None
            future.add_done_callback(self._finished)  # also runs when a queued one is cancelled
            futures[i] = future
        waiting = [asyncio.wrap_future(f) for f in futures.values()]
        try:
            await asyncio.wait(waiting, return_when=asyncio.FIRST_EXCEPTION)
        finally:
            for future in waiting:  # a failed or abandoned request: cancel what is still queued
                future.cancel()
        for i, future in futures.items():  # the failure of the lowest message index wins
            if future.done() and not future.cancelled() and future.exception() is not None:
                raise _api_error(i, future.exception())
        if any(future.cancelled() for future in futures.values()):  # the pool shut down
            raise ApiError(503, "unavailable", "the service is shutting down", {"Retry-After": "1"})
        out: list[ImageResult | None] = [None] * len(messages)
        for i, future in futures.items():
            out[i] = future.result()
        return out

    def _finished(self, _future: concurrent.futures.Future[Any]) -> None:
        with self._lock:
            self._pending -= 1

    def _classify_one(
        self, classifier: ImageClassifier, image: str, model: TextModel
    ) -> ImageResult:
        """In a pool thread: one picture, flood counting off (that comes after the request)."""
        started = time.perf_counter()
        outcome = "ok"
        try:
            return classifier.classify(image, text_model=model)
        except ImageError as exc:
            outcome = exc.code
            raise
        except MemoryError as exc:
            outcome = ImageTooLargeError.code
            raise ImageTooLargeError("the image is too large to analyse") from exc
        except Exception as exc:
            outcome = "analysis_failed"
            log.exception("image analysis failed")
            raise InvalidImageError("the image could not be analysed") from exc
        finally:
            self.metrics.image_seconds.observe(time.perf_counter() - started)
            self.metrics.images.labels(outcome).inc()

    async def count_floods(
        self,
        messages: Sequence[Message],
        images: list[ImageResult | None],
        *,
        dry_run: bool,
    ) -> list[ImageResult | None]:
        """`duplicate_count` of each picture posted to a group; recorded unless `dry_run`."""
        flood, pool = self.flood, self._flood_pool
        now = datetime.now(UTC)
        jobs: list[_FloodJob] = [
            (i, m.group_id, m.user_id, result.image_hash, _utc(m.sent_at or now))
            for i, (m, result) in enumerate(zip(messages, images, strict=True))
            if result is not None and m.group_id
        ]
        if not jobs or flood is None or pool is None:
            return images
        loop = asyncio.get_running_loop()
        counts = await loop.run_in_executor(pool, self._count, flood, jobs, dry_run)
        out = list(images)
        for i, count in counts.items():
            result = out[i]
            if result is not None:
                out[i] = replace(result, duplicate_count=count)
        return out

    def _count(self, flood: FloodCounter, jobs: list[_FloodJob], dry_run: bool) -> dict[int, int]:
        """In the flood thread, in message order."""
        counts: dict[int, int] = {}
        earlier: list[tuple[str, int, datetime]] = []  # this dry run's own pictures
        for i, group_id, user_id, image_hash, at in jobs:
            try:
                if dry_run:
                    found = flood.count(group_id, user_id, image_hash, at).group
                    found += sum(
                        1
                        for group, seen, seen_at in earlier
                        if group == group_id
                        and at - flood.window <= seen_at <= at
                        and is_near_duplicate(seen, image_hash)
                    )
                    earlier.append((group_id, image_hash, at))
                else:
                    found = flood.record(group_id, user_id, image_hash, at).group
            except Exception:
                log.exception("flood counter failed; duplicate_count 0")
                self.metrics.flood_errors.inc()
                found = 0
            counts[i] = found
        return counts


def _api_error(index: int, exc: BaseException | None) -> ApiError:
    if isinstance(exc, ImageError):
        return ApiError(exc.status, exc.code, f"messages.{index}.image: {exc.message}")
    return ApiError(422, "invalid_image", f"messages.{index}.image: the image cannot be read")
