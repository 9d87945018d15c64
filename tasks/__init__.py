"""Thin Prefect task wrappers over the plain pipeline steps in ``exchange_sync.pipeline``."""
