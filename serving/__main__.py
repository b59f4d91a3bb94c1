"""`python -m serving --host --port ...`: run the service with uvicorn (uvloop + httptools).

Flags override the `QUNGUARD_*` environment variables. Without API keys the service binds
127.0.0.1 only, whatever --host says.
"""

from __future__ import annotations

import argparse
import logging
import logging.config
from pathlib import Path
from typing import Any

import uvicorn

from serving.app import create_app
from serving.logs import log_config
from serving.settings import LOOPBACK, Settings

log = logging.getLogger("qunguard.main")

# flag -> settings field; each flag is optional and overrides the environment when given.
_FLAGS: dict[str, tuple[str, type, str]] = {
    "--host": ("host", str, "address to bind (127.0.0.1 without API keys)"),
    "--port": ("port", int, "TCP port"),
    "--models-dir": ("models_dir", Path, "folder of release folders"),
    "--max-batch": ("max_batch", int, "messages per model batch (1 turns batching off)"),
    "--max-wait-ms": ("max_wait_ms", float, "longest wait for a batch to fill"),
    "--max-queue": ("max_queue", int, "messages waiting before 503"),
    "--threads": ("intra_op_threads", int, "ONNX Runtime intra-op threads"),
    "--image-workers": ("image_workers", int, "threads that decode and analyse images"),
    "--ocr": ("ocr", str, "text in images: auto, always or never"),
    "--log-level": ("log_level", str, "debug, info, warning, error"),
}


def parse_settings(argv: list[str] | None = None) -> Settings:
    parser = argparse.ArgumentParser(prog="python -m serving", description=__doc__)
    for flag, (dest, kind, text) in _FLAGS.items():
        parser.add_argument(flag, dest=dest, type=kind, default=None, help=text)
    parser.add_argument(
        "--no-warmup", dest="warmup", action="store_false", default=None, help="skip warm-up"
    )
    args = vars(parser.parse_args(argv))
    given: dict[str, Any] = {name: value for name, value in args.items() if value is not None}
    return Settings(**given)


def main(argv: list[str] | None = None) -> None:
    settings = parse_settings(argv)
    logging.config.dictConfig(log_config(settings.log_level))
    host = settings.bind_host()
    if host != settings.host:
        log.warning(
            "no API keys configured: binding %s instead of %s",
            LOOPBACK,
            settings.host,
            extra={"requested_host": settings.host},
        )
    uvicorn.run(
        create_app(settings),
        host=host,
        port=settings.port,
        loop="uvloop",
        http="httptools",
        access_log=False,  # replaced by QUNGUARD_ACCESS_LOG (JSON) and the metrics
        proxy_headers=False,  # client addresses are not used; skips a middleware per request
        log_config=log_config(settings.log_level),
        timeout_keep_alive=30,
    )


if __name__ == "__main__":
    main()
