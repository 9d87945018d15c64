"""Real-time sync (issue #16): ``exchange-sync watch``. Prefect-free; see docs/watch.md.

One entry point, ``run_watch(config, *, stop=None, duration_s=None) -> WatchSummary``: the CLI
calls it with a stop event set by SIGTERM/SIGINT, a Prefect flow can call it the same way.
"""

from exchange_sync.watch.models import MailboxWatch, WatchSummary
from exchange_sync.watch.runner import run_watch

__all__ = ["MailboxWatch", "WatchSummary", "run_watch"]
