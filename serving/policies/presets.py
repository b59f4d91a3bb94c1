"""Policy presets (`data/policies/<name>.yaml`) and turning a group's document into a Policy.

A document may name a `preset` to start from (default: the service's default preset); its
other keys replace the preset's, except `labels`, which replaces the preset's rules label by
label. The result is validated as a whole, so a bad document is refused with every problem
named and nothing changes.
"""

from __future__ import annotations

import copy
import json
from functools import cache
from typing import Any

import yaml
from pydantic import ValidationError

from models.paths import DATA_DIR
from serving.errors import describe_errors
from serving.policies.model import Policy

PRESETS_DIR = DATA_DIR / "policies"
PRESET_KEY = "preset"


class PolicyError(ValueError):
    """A policy document that cannot be used; the message says why."""


class MalformedDocument(PolicyError):
    """A body that is not JSON (or YAML) at all."""


def preset_names() -> list[str]:
    return sorted(path.stem for path in PRESETS_DIR.glob("*.yaml"))


@cache
def _preset_document(name: str) -> dict[str, Any]:
    if name not in preset_names():
        raise PolicyError(f"unknown preset {name!r}; presets: {', '.join(preset_names())}")
    document = yaml.safe_load((PRESETS_DIR / f"{name}.yaml").read_text(encoding="utf-8"))
    if not isinstance(document, dict):
        raise PolicyError(f"preset {name!r} is not a mapping")
    return document


def preset_document(name: str) -> dict[str, Any]:
    """A copy of the preset's raw document."""
    return copy.deepcopy(_preset_document(name))


def load_preset(name: str) -> Policy:
    return resolve({PRESET_KEY: name}, default_preset=name)


def resolve(document: Any, *, default_preset: str) -> Policy:
    """The policy a group document describes; raises PolicyError when it is not valid."""
    if not isinstance(document, dict):
        raise PolicyError("a policy document must be a mapping (a JSON object)")
    overrides = dict(document)
    name = overrides.pop(PRESET_KEY, None) or default_preset
    if not isinstance(name, str):
        raise PolicyError("preset must be the name of a preset")
    merged = {**preset_document(name), PRESET_KEY: name}
    for key, value in overrides.items():
        if key == "labels" and isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    try:
        return Policy.model_validate(merged)
    except ValidationError as exc:
        raise PolicyError(describe_errors(exc.errors())) from exc


def parse_document(body: bytes, content_type: str) -> Any:
    """The document in a request body: YAML when the content type says so, else JSON."""
    is_yaml = "yaml" in content_type.lower()
    try:
        text = body.decode("utf-8")
        return yaml.safe_load(text) if is_yaml else json.loads(text)
    except (UnicodeDecodeError, yaml.YAMLError, ValueError) as exc:
        kind = "YAML" if is_yaml else "JSON"
        raise MalformedDocument(f"the policy document is not valid {kind}: {exc}") from exc
