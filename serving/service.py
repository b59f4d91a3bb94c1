"""The running service: the engine being served, the batcher, start-up, reload and readiness."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

from models.image import ImageResult
from models.release import ReleaseError
from serving.batcher import BatcherStopped, DynamicBatcher, Overloaded
from serving.engine import Classified, Engine, load_newest, load_newest_servable
from serving.errors import ApiError
from serving.images import ImageService
from serving.keys import KeyRing
from serving.metrics import Metrics
from serving.schemas import Message
from serving.settings import Settings
from serving.store import Store

log = logging.getLogger("qunguard.service")


class Service:
    """Holds the current engine; swapping it is one reference assignment (atomic)."""

    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.keys = KeyRing(settings.api_keys, settings.admin_keys)
        self.engine: Engine | None = None
        self.reason = "the model is loading"
        self.batcher = DynamicBatcher(
            max_batch=settings.max_batch,
            max_wait_ms=settings.max_wait_ms,
            max_queue=settings.max_queue,
            on_batch=metrics.observe_batch,
        )
        metrics.track_queue(lambda: self.batcher.queued)
        self.images = ImageService(settings, metrics)
        self._lock = asyncio.Lock()
        self._loader: asyncio.Task[None] | None = None
        self._store: Store | None = None

    @property
    def loading(self) -> bool:
        """True until the start-up load has finished (whether or not a model was found)."""
        return self._loader is None or not self._loader.done()

    async def start(self, store: Store | None = None) -> None:
        """Start batching and load the model in the background (/healthz answers meanwhile).

        `store`: the service database, for the image flood counter (else it opens its own).
        """
        self._store = store
        self._lock = asyncio.Lock()  # bound to this loop (an app may be started again)
        self.batcher.start()
        self.images.start()
        self._loader = asyncio.get_running_loop().create_task(self._load_initial())

    async def stop(self) -> None:
        if self._loader is not None and not self._loader.done():
            self._loader.cancel()
        await self.batcher.stop()
        self.images.stop()

    async def _load_initial(self) -> None:
        async with self._lock:
            try:
                engine = await asyncio.to_thread(self._load_and_warm, load_newest_servable)
            except ReleaseError as exc:
                self.reason = f"no model could be loaded: {exc}"
                log.error("no model", extra={"reason": str(exc)})
                return
            # Ready only with the image models too (a failure there leaves text served).
            await asyncio.to_thread(self.images.load, engine, self._store)
            self._install(engine)

    def _load_and_warm(self, loader: Callable[..., Engine]) -> Engine:
        root = Path(self.settings.models_dir)
        engine = loader(root, intra_op_threads=self.settings.intra_op_threads)
        if self.settings.warmup:
            engine.warm_up(self.settings.max_batch)
        return engine

    def _install(self, engine: Engine) -> None:
        previous = self.engine
        self.engine = engine
        self.reason = ""
        self.images.use_engine(engine)
        _freeze_heap()
        self.metrics.set_model(engine.version)
        self.metrics.ready.set(1)
        log.info(
            "model serving",
            extra={
                "version": engine.version,
                "folder": str(engine.folder),
                "previous": previous.version if previous else None,
            },
        )

    async def reload(self) -> tuple[Engine, str | None]:
        """Load and warm the newest release, then swap it in; refused if it does not load.

        Requests already queued keep the engine they were admitted with.
        """
        async with self._lock:
            try:
                engine = await asyncio.to_thread(self._load_and_warm, load_newest)
            except ReleaseError as exc:
                self.metrics.reloads.labels("refused").inc()
                log.warning("reload refused", extra={"reason": str(exc)})
                raise ApiError(409, "model_invalid", f"reload refused: {exc}") from exc
            previous = self.engine.version if self.engine else None
            self._install(engine)
            self.metrics.reloads.labels("loaded").inc()
            return engine, previous

    async def classify(
        self, texts: Sequence[str | None], engine: Engine | None = None
    ) -> tuple[Engine, list[Classified]]:
        """Results for `texts` through the batcher, with the engine that produced them (the
        one given, else the current one)."""
        engine = engine or self.engine
        retry = {"Retry-After": str(self.settings.retry_after_s)}
        if engine is None:
            raise ApiError(503, "model_unavailable", self.reason, retry)
        try:
            results = await self.batcher.submit(engine, texts)
        except Overloaded as exc:
            self.metrics.rejected.inc()
            raise ApiError(503, "overloaded", f"too many messages waiting ({exc})", retry) from exc
        except BatcherStopped as exc:
            raise ApiError(503, "unavailable", str(exc), retry) from exc
        return engine, results

    async def classify_messages(
        self, messages: Sequence[Message], *, dry_run: bool
    ) -> tuple[Engine, list[Classified], list[ImageResult | None]]:
        """Texts through the batcher and images through the image pool, side by side, on one
        engine; then the pictures' flood counts (see `serving.images`). Images in request
        order, None for messages without one."""
        texts = [m.text for m in messages]
        if all(m.image is None for m in messages):
            engine, classified = await self.classify(texts)
            return engine, classified, [None] * len(messages)
        engine = self.engine
        if engine is None:
            retry = {"Retry-After": str(self.settings.retry_after_s)}
            raise ApiError(503, "model_unavailable", self.reason, retry)
        self.images.admit(messages, self.settings.retry_after_s)
        analysis = asyncio.ensure_future(self.images.analyse(engine, messages))
        analysis.add_done_callback(_retrieve)
        try:
            _, classified = await self.classify(texts, engine)
        except BaseException:
            analysis.cancel()
            raise
        images = await analysis
        images = await self.images.count_floods(messages, images, dry_run=dry_run)
        return engine, classified, images


def _retrieve(task: asyncio.Future[object]) -> None:
    """Mark a task's exception as seen (the request that started it may have failed first)."""
    if not task.cancelled():
        task.exception()


def _freeze_heap() -> None:
    """Move the long-lived objects (model, lexicon, caches) out of the garbage collector's way.

    A full collection walks every tracked object: with the text pipeline's tables loaded that
    is ~230,000 objects and a ~35 ms pause (measured) in the middle of requests. After a load
    they are frozen (gc.freeze), so collections only see request garbage. Unfreezing first lets
    the collection free what a previous model left behind in reference cycles.
    """
    gc.unfreeze()
    gc.collect()
    gc.freeze()
