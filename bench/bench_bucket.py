"""The bucket destination against the comments API (uvicorn over loopback, SQLite): emails per second
for a first load and a replay. Usage: python bench/bench_bucket.py [N] [BODY_BYTES]

Both sides run in this process (the API validates each email's base64 and writes SQLite), so the
figure is a floor for a remote tenant's own speed, and a measure of our batching and ledger cost."""

from __future__ import annotations

import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root: tests.support

from exchange_sync.destinations.bucket import ReinferBucketClient  # noqa: E402
from exchange_sync.store import SqlStore  # noqa: E402
from tests.support.api import running_api  # noqa: E402
from tests.support.comments import make_comment  # noqa: E402


def main(n: int = 500, body: int = 45_000) -> None:
    tmp = tempfile.mkdtemp()
    rows, comments = [], []
    for i in range(n):
        mime = (f"From: a@acme.com\r\nMessage-ID: <{i}@bench>\r\nSubject: s{i}\r\n\r\n" + "x" * body).encode()
        rows.append({"mailbox": "ap@acme.com", "folder_path": "Inbox", "item_id": f"i{i}", "conversation_id": "c",
                     "datetime_received": datetime.now(timezone.utc), "size": len(mime), "mime_content": mime})
        comments.append(make_comment(i, extra_properties={"string:Item ID": f"i{i}"}).to_api())
    with running_api(f"sqlite:///{tmp}/api.db") as api, SqlStore(f"sqlite:///{tmp}/state.db") as ledger:
        dest = ReinferBucketClient(api.url, "acme", "bench", api.token, ledger=ledger)
        for label in ("first load", "replay"):
            started = time.perf_counter()
            counts = dest.load_staged(iter(rows), comments)
            seconds = time.perf_counter() - started
            print(f"{label}: {n} emails of {body // 1000} KB in {seconds:.2f} s = {n / seconds:.0f} emails/s, "
                  f"{n * body / seconds / 1e6:.1f} MB/s of MIME ({counts.new} new, {counts.unchanged} unchanged)")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
