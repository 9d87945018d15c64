"""`exchange-sync demo`: the whole product on embedded defaults, in one command.

Starts the EWS test server (HTTPS + NTLM, generated mail in two mailboxes with CC'd copies),
writes a configuration for it, runs the sync flow, moves a message on the server, runs again and
shows the comment's Folder following the move — with no Exchange, no tenant and no setup.
"""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path

import yaml

# The test servers are their own distribution (testservers/), not part of the exchange-sync wheel.
NOT_INSTALLED = "error: the demo runs the EWS test server, which is not installed: pip install -e ./testservers"
TEST_SERVER_PACKAGES = ("testserver_core", "ews_testserver")

DEMO_MAILBOXES = ("ap@demo.example", "support@demo.example")
DEMO_ACCOUNT = "svc-sync@demo.example"
PASSWORD_ENV = "EXCHANGE_SYNC_DEMO_PASSWORD"


def _say(text: str) -> None:
    print(text, flush=True)


def demo_config(directory: Path, server_url: str, ca_file: str | None) -> dict:
    return {
        "name": "demo",
        "connection": {
            "kind": "ews",
            "server_url": server_url,
            "auth": "ntlm",
            "username": DEMO_ACCOUNT,
            "password": {"env": PASSWORD_ENV},
            "access_type": "delegate",
            "tls": {"verify": True, "ca_bundle": ca_file} if ca_file else {"verify": True},
        },
        "mailboxes": [{"email": m} for m in DEMO_MAILBOXES],
        "destination": {"kind": "store", "url": f"sqlite:///{directory / 'comments.db'}"},
        "staging": {"url": str(directory / "staging")},
        "state": {"url": f"sqlite:///{directory / 'state.db'}"},
    }


def _pick_inbox_comment(store, source: str):
    """A comment of an email in some Inbox, to move (the newest, for a stable choice)."""
    comments, after = [], None
    while True:
        page, after = store.list_comments(source, after=after, limit=500)
        comments += [c for c in page if c.user_properties.get("string:Folder") == "Inbox"]
        if not after or not page:
            break
    return max(comments, key=lambda c: (c.timestamp, c.id)) if comments else None


def run_demo(directory: Path, messages: int) -> int:
    """The demo; returns the exit status (``EXIT_CONFIG`` with one line when the test server is missing)."""
    from exchange_sync.cli.common import EXIT_CONFIG, print_report, run_flow

    try:
        from ews_testserver.testing import running_server
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] not in TEST_SERVER_PACKAGES:
            raise  # a module missing inside an installed test server: a bug, with its traceback
        print(NOT_INSTALLED, file=sys.stderr, flush=True)
        return EXIT_CONFIG
    from exchange_sync.config import parse_config
    from exchange_sync.store import SqlStore

    directory = directory.resolve()
    directory.mkdir(parents=True, exist_ok=True)
    password = secrets.token_urlsafe(16)
    os.environ[PASSWORD_ENV] = password
    _say(f"Starting the EWS test server (HTTPS, NTLM) with {messages} generated messages per mailbox ...")
    with running_server(
        accounts=[f"{DEMO_ACCOUNT}:{password}"],
        mailboxes=[f"{m}=generate:{messages}" for m in DEMO_MAILBOXES],
        grants=[f"{DEMO_ACCOUNT}={m}" for m in DEMO_MAILBOXES],
        tls=True,
        auth="ntlm",
    ) as srv:
        _say(f"  EWS endpoint {srv.url}")
        data = demo_config(directory, srv.url, srv.ca_file)
        config_path = directory / "config.yaml"
        config_path.write_text(yaml.safe_dump(data, sort_keys=False))
        _say(f"  configuration written to {config_path} (password from ${PASSWORD_ENV})")
        config = parse_config(data)

        _say("\n1. First sync (a local Prefect API starts on first use: ~30 s on a fresh machine) ...")
        summary, code = run_flow(config)
        if summary:
            print_report(summary, as_json=False)
        if code not in (0,):
            _say("The first sync failed; see the messages above.")
            return code

        store = SqlStore(data["destination"]["url"])
        source = config.destination.source_key
        comment = _pick_inbox_comment(store, source)
        if comment is None:
            _say("No comment in an Inbox to move; the demo stops here.")
            return 0
        message_id = comment.user_properties["string:Message ID"]
        mailbox = comment.user_properties["string:Mailbox"]
        subject = comment.messages[0].subject.text if comment.messages[0].subject else ""
        _say(f"\n2. Moving {message_id} ('{subject[:60]}') in {mailbox} from Inbox to Archive on the server ...")
        if not _has_folder(srv, mailbox, "Archive"):
            srv.create_folder(mailbox, "Archive")
        srv.move(mailbox, message_id, "Archive")

        _say("\n3. Second sync: only the changes are read ...")
        summary, code = run_flow(config)
        if summary:
            print_report(summary, as_json=False)
        after = store.get_comment(comment.id, source=source)
        assert after is not None
        _say(
            f"\nComment {comment.id[:32]}...: string:Folder "
            f"'{comment.user_properties.get('string:Folder')}' -> '{after.user_properties.get('string:Folder')}', "
            f"subject unchanged: {after.messages[0].subject == comment.messages[0].subject}"
        )
        total = store.count_comments(source)
        _say(
            f"\n{total} comments in {data['destination']['url']}. Try:\n"
            f"  exchange-sync comments list {config_path} --json | head -3\n"
            f"  exchange-sync status {config_path}\n"
            f"  exchange-sync usage {config_path}\n"
            f"  exchange-sync api --no-auth --store {data['destination']['url']}   # then open http://127.0.0.1:8000/\n"
            "(the demo's EWS server stops now; `run` needs a live server)"
        )
        return code


def _has_folder(srv, mailbox: str, path: str) -> bool:
    for mb in srv.mailboxes():
        if mb["address"].lower() == mailbox.lower():
            return any(f.get("path") == path for f in mb.get("folders", []))
    return False
