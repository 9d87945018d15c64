"""Shared fixtures of the transform tests: the real-world corpus (skipped when absent) and samples."""

from __future__ import annotations

from pathlib import Path

import pytest

SAMPLES = Path(__file__).parent / "samples"
# The corpus lives beside the project (../shared/corpus), read-only, never copied into it.
CORPUS = Path(__file__).resolve().parents[3] / "shared" / "corpus" / "real-world-emails"


def corpus_files() -> list[Path]:
    if not CORPUS.is_dir():
        return []
    return sorted(p for p in CORPUS.rglob("*") if p.is_file() and p.name != "LICENSE")


@pytest.fixture(scope="session")
def corpus() -> list[Path]:
    files = corpus_files()
    if not files:
        pytest.skip(f"real-world corpus not found at {CORPUS} (it lives in ../shared, outside the project)")
    return files
