"""Fixtures for end-to-end pipeline tests (``password``, ``ews`` and ``sync`` are tests/support/fixtures.py's).

Configs and store helpers are ``tests.support.pipeline``'s (shared with the Graph and reliability tests).
"""

from __future__ import annotations


import pytest

from tests.support.pipeline import ACCOUNT, PASSWORD_ENV, all_comments, make_config, store_of

__all__ = ["ACCOUNT", "PASSWORD_ENV", "all_comments", "make_config", "store_of"]


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path):
    """The comment store's URL: SQLite, and PostgreSQL when configured (see tests.support.db)."""
    from tests.support.db import database_url

    with database_url(request.param, tmp_path) as url:
        yield url
