"""glibc malloc tuning: applied once, in a fresh process, and never over an operator's setting."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc only")

SCRIPT = """
import ctypes, ctypes.util, json, sys
calls = []
real = ctypes.CDLL
class Spy:
    def __init__(self, *a, **k): self._lib = real(*a, **k)
    def mallopt(self, param, value):
        calls.append([param, value]); return self._lib.mallopt(param, value)
ctypes.CDLL = Spy
from exchange_sync.memory import tune_malloc
print(json.dumps([tune_malloc(), tune_malloc(), calls]))
"""


def _run(env_extra: dict[str, str]) -> list:
    import json
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")} | env_extra
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout)


def test_two_arenas_and_a_fixed_mmap_threshold_once():
    first, second, calls = _run({})
    assert first is True and second is True
    assert calls == [[-8, 2], [-3, 1024 * 1024]]  # M_ARENA_MAX, M_MMAP_THRESHOLD; the second call is a no-op


def test_an_operators_environment_wins():
    _first, _second, calls = _run({"MALLOC_ARENA_MAX": "4"})
    assert calls == [[-3, 1024 * 1024]]


def test_arrow_allocates_with_the_system_malloc_unless_the_operator_chose():
    import json
    import os

    code = ("import json, pyarrow as pa\nfrom exchange_sync.memory import tune_arrow_pool\n"
            "print(json.dumps([tune_arrow_pool(), pa.default_memory_pool().backend_name]))")
    env = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert json.loads(out.stdout) == [True, "system"]
    env["ARROW_DEFAULT_MEMORY_POOL"] = "jemalloc"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert json.loads(out.stdout) == [False, "jemalloc"]
