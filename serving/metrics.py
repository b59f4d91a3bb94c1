"""Prometheus metrics, one registry per app (so tests can build several apps side by side)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from starlette.types import ASGIApp, Scope

from models.labels import IMAGE_LABELS, TEXT_LABELS
from serving.batcher import BatchStats
from serving.errors import ERROR_CODE_KEY
from serving.observe import ResponseObserver

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
IMAGE_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.5, 5.0, 10.0)
UNMATCHED = "unmatched"  # the route label of unknown paths (keeps the label set bounded)
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})


class Metrics:
    """The service's metrics in their own registry."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "qunguard_requests", "HTTP requests answered", ["route", "method", "status"], registry=r
        )
        self.errors = Counter(
            "qunguard_errors", "HTTP error answers", ["route", "status", "code"], registry=r
        )
        self.latency = Histogram(
            "qunguard_request_duration_seconds",
            "Time from request to last response byte",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            "qunguard_batch_size", "Messages per model batch", buckets=BATCH_BUCKETS, registry=r
        )
        self.batch_seconds = Histogram(
            "qunguard_batch_duration_seconds",
            "Time to analyse, score and fuse one batch",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.queue_depth = Gauge(
            "qunguard_queue_depth", "Messages waiting for the model", registry=r
        )
        self.rejected = Counter(
            "qunguard_overload_rejections", "Requests refused with 503 (queue full)", registry=r
        )
        self.messages = Counter("qunguard_messages", "Messages classified", ["flagged"], registry=r)
        self.labels = Counter(
            "qunguard_labels", "Labels emitted on classified messages", ["label"], registry=r
        )
        self.model_info = Gauge(
            "qunguard_model_info", "The text model being served (value 1)", ["version"], registry=r
        )
        self.reloads = Counter(
            "qunguard_model_reloads", "Model reload attempts", ["outcome"], registry=r
        )
        self.ready = Gauge("qunguard_ready", "1 when a model is loaded and warm", registry=r)
        self.image_seconds = Histogram(
            "qunguard_image_duration_seconds",
            "Time to decode and analyse one image in the image pool",
            buckets=IMAGE_BUCKETS,
            registry=r,
        )
        self.images = Counter(
            "qunguard_images",
            "Images analysed, by outcome (ok or the error code)",
            ["outcome"],
            registry=r,
        )
        self.image_queue_depth = Gauge(
            "qunguard_image_queue_depth", "Images waiting for or in the image pool", registry=r
        )
        self.flood_errors = Counter(
            "qunguard_image_flood_errors",
            "Flood-counter failures (duplicate_count reported as 0)",
            registry=r,
        )
        # Label children looked up once: `.labels()` on every request is measurable. Image
        # labels (nsfw, qrcode, image_ad) count here too.
        self._label_counters = {
            label: self.labels.labels(label) for label in TEXT_LABELS + IMAGE_LABELS
        }
        self._flagged = {True: self.messages.labels("true"), False: self.messages.labels("false")}

    def observe_batch(self, stats: BatchStats) -> None:
        self.batch_size.observe(stats.size)
        self.batch_seconds.observe(stats.seconds)

    def observe_results(self, labels_per_message: Iterable[list[str]]) -> None:
        for labels in labels_per_message:
            self._flagged[bool(labels)].inc()
            for label in labels:
                self._label_counters[label].inc()

    def track_queue(self, depth: Callable[[], float]) -> None:
        self.queue_depth.set_function(depth)

    def track_image_queue(self, depth: Callable[[], float]) -> None:
        self.image_queue_depth.set_function(depth)

    def set_model(self, version: str | None) -> None:
        self.model_info.clear()
        if version is not None:
            self.model_info.labels(version).set(1)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class MetricsMiddleware(ResponseObserver):
    """Counts requests and errors by route and status and times them (pure ASGI: cheap)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        super().__init__(app)
        self.metrics = metrics
        # (route, method, status) -> (request counter, latency histogram) children; a bounded
        # set (routes, methods and statuses are few), looked up once instead of per request.
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def observe(self, scope: Scope, status: int, seconds: float) -> None:
        route = scope.get("route")
        path = getattr(route, "path", UNMATCHED) if route is not None else UNMATCHED
        method = scope["method"] if scope["method"] in _METHODS else "other"
        m = self.metrics
        key = (path, method, status)
        children = self._children.get(key)
        if children is None:
            children = (m.requests.labels(path, method, str(status)), m.latency.labels(path))
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)
        if status >= 400:
            code = scope.get(ERROR_CODE_KEY, "internal_error" if status >= 500 else "other")
            m.errors.labels(path, str(status), code).inc()
