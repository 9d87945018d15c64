"""The comments API (public Re:infer routes) and the read-only comments page."""

from exchange_sync.api.app import create_app

__all__ = ["create_app"]
