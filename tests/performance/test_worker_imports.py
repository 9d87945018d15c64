"""A transform worker imports only what the transform needs: its start-up is CPU taken from the
extraction it overlaps (1.4 s with pandas, exchangelib and SQLAlchemy; ~0.7 s without)."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("pandas", "exchangelib", "sqlalchemy", "prefect", "exchange_sync.config", "exchange_sync.store")


def test_a_warmed_up_worker_has_not_imported_the_pipelines_heavy_dependencies():
    code = (
        "import json, sys\n"
        "from exchange_sync.pipeline.transform_worker import transform_in_worker, warm_up\n"
        "warm_up()\n"
        "from exchange_sync.transform.language import _identifier\n"
        f"print(json.dumps([_identifier.cache_info().currsize, [m for m in {HEAVY!r} if m in sys.modules]]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    model_loaded, heavy = json.loads(out)
    assert model_loaded == 1  # the warm-up really loaded the language model
    assert heavy == []
