"""Service settings, read from `QUNGUARD_*` environment variables (CLI flags override them)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from models.release import RELEASES_DIR

LOOPBACK = "127.0.0.1"


class Settings(BaseSettings):
    """Everything the service can be told; see README "Serving" for the variables."""

    model_config = SettingsConfigDict(env_prefix="QUNGUARD_", extra="ignore")

    host: str = LOOPBACK
    port: int = Field(8000, ge=0, le=65535)
    models_dir: Path = RELEASES_DIR
    # Comma-separated keys; admin keys may also call every non-admin endpoint.
    api_keys: Annotated[tuple[str, ...], NoDecode] = ()
    admin_keys: Annotated[tuple[str, ...], NoDecode] = ()
    # Dynamic batching: a batch closes at max_batch messages or max_wait_ms after its first one.
    # max_batch=1 turns batching off.
    max_batch: int = Field(64, ge=1, le=1024)
    max_wait_ms: float = Field(2.0, ge=0.0, le=1000.0)
    # Messages waiting for the model; beyond this a request gets 503 with Retry-After at once.
    max_queue: int = Field(256, ge=1)
    retry_after_s: int = Field(1, ge=1)
    intra_op_threads: int = Field(1, ge=1, le=64)
    warmup: bool = True
    # 48 MiB: the text of 256 messages of 10,000 characters (16 MiB as JSON) plus the base64 of
    # max_request_image_bytes of pictures (32 MiB).
    max_body_bytes: int = Field(48 * 1024 * 1024, ge=1024)
    # Images (serving/images.py): analysed in a pool of image_workers threads, never on the
    # event loop; OCR auto (when the cheap text check finds text lines), always or never.
    image_workers: int = Field(1, ge=1, le=64)
    ocr: Literal["auto", "always", "never"] = "auto"
    # Images waiting for or in the pool; beyond this a request with images gets 503 at once.
    max_image_queue: int = Field(32, ge=1)
    # Decoded bytes of all the images of one request (estimated from the base64); over: 413.
    # 24 MiB: two pictures at the contract's 10 MiB limit, or a dozen ordinary photos.
    max_request_image_bytes: int = Field(24 * 1024 * 1024, ge=10 * 1024 * 1024)
    # The service database: SQLite file qunguard.db in data_dir, or PostgreSQL at database_url.
    data_dir: Path = Path("var")
    database_url: str | None = None
    # Group policies: the preset (data/policies/<name>.yaml) of groups without their own, and
    # how long a process keeps a group's policy before reading it again (another process may
    # have changed it).
    default_policy: str = "company"
    policy_cache_s: float = Field(5.0, ge=0.0, le=3600.0)
    log_level: str = "info"
    access_log: bool = False
    log_text: bool = False

    @field_validator("api_keys", "admin_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(key.strip() for key in value.split(",") if key.strip())
        return value

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.lower()
        if level not in {"debug", "info", "warning", "error", "critical"}:
            raise ValueError("log_level must be debug, info, warning, error or critical")
        return level

    @property
    def auth_enabled(self) -> bool:
        return bool(self.api_keys or self.admin_keys)

    def bind_host(self) -> str:
        """The address to listen on: loopback only while no API keys are configured."""
        return self.host if self.auth_enabled else LOOPBACK
