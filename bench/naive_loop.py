"""The loop a user would write with exchangelib: the baseline of ``bench/bench_sync.py``.

    .venv/bin/python bench/naive_loop.py --url URL --ca CA --username U --password-env VAR \
        --mailbox a@example.com [--mailbox ...] --db out.sqlite

Unmodified exchangelib 5.6.0 (no fastparse, default page/chunk sizes, one connection), NTLM over
HTTPS, every mail folder of ``msg_folder_root.walk()``, ``folder.all().only("mime_content", ...)``,
the stdlib ``email`` parse (compat32 + decode every text part: the cheapest honest parse, the same
baseline as ``bench/bench_transform.py``), one row per email into SQLite, one commit per folder.

Prints one JSON line: {"emails", "seconds", "emails_per_s", "max_rss_mb"}. ``seconds`` is the loop
(from creating the Account to the last commit), not the interpreter start-up.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sqlite3
import time
from email import message_from_bytes
from email.policy import compat32, default


def text_of(message) -> str:
    parts = []
    for part in message.walk():
        if part.get_content_maintype() == "text":
            payload = part.get_payload(decode=True) or b""
            try:
                parts.append(payload.decode(part.get_content_charset() or "utf-8", "replace"))
            except LookupError:
                parts.append(payload.decode("utf-8", "replace"))
    return "\n".join(parts)


def text_of_modern(message) -> str:
    body = message.get_body(preferencelist=("plain", "html"))
    return body.get_content() if body is not None else ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--ca", required=True, help="CA bundle of the server (given to requests)")
    parser.add_argument("--username", required=True)
    parser.add_argument("--password-env", required=True)
    parser.add_argument("--mailbox", action="append", required=True)
    parser.add_argument("--db", required=True)
    parser.add_argument("--policy", choices=("compat32", "default"), default="compat32",
                        help="email policy: compat32 (fast, default) or default (get_body/get_content, ~10x slower)")
    args = parser.parse_args()
    os.environ["REQUESTS_CA_BUNDLE"] = args.ca  # how a user points requests at a private CA

    from exchangelib import DELEGATE, NTLM, Account, Configuration, Credentials, Version
    from exchangelib.version import Build

    db = sqlite3.connect(args.db)
    db.execute("CREATE TABLE IF NOT EXISTS emails (id TEXT PRIMARY KEY, mailbox TEXT, folder TEXT,"
               " received TEXT, subject TEXT, sender TEXT, body TEXT)")
    policy = compat32 if args.policy == "compat32" else default
    extract = text_of if args.policy == "compat32" else text_of_modern
    start = time.perf_counter()
    config = Configuration(service_endpoint=args.url, credentials=Credentials(args.username, os.environ[args.password_env]),
                           auth_type=NTLM, version=Version(Build(15, 1, 2507, 6)))
    count = 0
    for address in args.mailbox:
        account = Account(address, config=config, autodiscover=False, access_type=DELEGATE)
        for folder in account.msg_folder_root.walk():
            if folder.folder_class is not None and not folder.folder_class.startswith("IPF.Note"):
                continue
            if folder.name in ("Drafts", "Outbox"):
                continue
            for item in folder.all().only("mime_content", "datetime_received", "message_id"):
                message = message_from_bytes(item.mime_content, policy=policy)
                db.execute(
                    "INSERT OR REPLACE INTO emails VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (item.message_id or item.id, address, folder.name, item.datetime_received.isoformat(),
                     str(message["Subject"]), str(message["From"]), extract(message)),
                )
                count += 1
            db.commit()
    seconds = time.perf_counter() - start
    db.close()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"emails": count, "seconds": round(seconds, 3), "emails_per_s": round(count / seconds, 1),
                      "max_rss_mb": round(rss, 1)}))


if __name__ == "__main__":
    main()
