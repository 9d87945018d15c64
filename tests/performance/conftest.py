"""Fixtures of the performance-behaviour tests (no timing: they assert requests, order and state)."""

from __future__ import annotations

from tests.pipeline.conftest import PASSWORD_ENV, all_comments, ews, make_config, password, store_of, sync  # noqa: F401
