"""Fixtures of the performance-behaviour tests (no timing: they assert requests, order and state).

``ews``, ``password`` and ``sync`` are the suite's shared fixtures (``tests/support/fixtures.py``)."""

from __future__ import annotations

from tests.support.pipeline import PASSWORD_ENV, all_comments, make_config, store_of  # noqa: F401
