"""``module:name`` references, resolved on first use (registries and entrypoints import nothing up front)."""

from __future__ import annotations

import importlib
from typing import Any


def resolve(ref: str) -> Any:
    """The object named by ``"package.module:name"``, importing the module now."""
    module, _, name = ref.partition(":")
    return getattr(importlib.import_module(module), name)
