"""`exchange-sync check CONFIG [--json]` as a user runs it, against the project's EWS and Graph test servers
over real sockets (HTTPS; NTLM for EWS, client credentials for Graph)."""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ews_testserver.testing import running_server
from tests.support.pipeline import ACCOUNT, PASSWORD_ENV, make_config
from graph_testserver.testing import running_graph_server

from ..security.test_secrets import leaks

pytestmark = pytest.mark.timeout(180)

PASSWORD = "pw-" + secrets.token_hex(8)
WRONG_PASSWORD = "wrong-" + secrets.token_hex(8)
GRAPH_SECRET_ENV = "EXSYNC_CHECK_GRAPH_SECRET"
READ_ONLY = {"GetFolder", "FindFolder", "ConvertId"}


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if k not in (PASSWORD_ENV, GRAPH_SECRET_ENV)}
    full.update(env or {})
    return subprocess.run([sys.executable, "-m", "exchange_sync", *args], capture_output=True, text=True,
                          env=full, timeout=150)


def write(data: dict, tmp_path: Path, name: str = "check.yaml") -> str:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return str(path)


def lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ews():
    """ap: granted, 5 messages; other: exists, no grant."""
    with running_server(accounts=[f"{ACCOUNT}:{PASSWORD}"],
                        mailboxes=["ap@example.com=generate:5", "other@example.com=generate:3"],
                        grants=[f"{ACCOUNT}=ap@example.com"], tls=True, auth="ntlm") as srv:
        yield srv


def ews_config(srv, tmp_path: Path, mailboxes: list, **connection) -> str:
    data = make_config(srv, tmp_path, mailboxes, name="check-e2e",
                       connection={"retry_attempts": 2, "max_backoff_s": 2, "timeout_s": 20, **connection})
    return write(data, tmp_path)


# ---- EWS ------------------------------------------------------------------------------------------------
def test_good_config_reports_version_tls_auth_and_folder_counts(ews, tmp_path: Path):
    seq = ews.last_seq()
    config = ews_config(ews, tmp_path, ["ap@example.com", {"email": "off@example.com", "enabled": False}])
    proc = cli("check", config, env={PASSWORD_ENV: PASSWORD})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "Exchange2016 (15.1.2507.6)" in out
    assert "TLSv1.3" in out and "TLS_AES" in out
    assert "ntlm: accepted" in out
    assert "ap@example.com" in out and "ok" in out
    assert "off@example.com" in out and "disabled" in out
    assert "Traceback" not in proc.stderr
    assert not leaks((out + proc.stderr).encode(), PASSWORD)
    entries = ews.log(seq)
    assert entries and {e["operation"] for e in entries} <= READ_ONLY
    assert not any(e["write"] for e in entries)


def test_json_has_the_fields_and_folder_counts_follow_the_lists(ews, tmp_path: Path):
    config = ews_config(ews, tmp_path, ["ap@example.com"])
    report = json.loads(cli("check", config, "--json", env={PASSWORD_ENV: PASSWORD}).stdout)
    assert set(report) == {"integration", "server", "mailboxes", "ok"}
    assert report["integration"] == "check-e2e" and report["ok"] is True
    server = report["server"]
    assert server["url"] == ews.url and server["kind"] == "ews" and server["reachable"] is True
    assert (server["version"], server["build"]) == ("Exchange2016", "15.1.2507.6")
    assert server["tls"]["protocol"].startswith("TLSv1.") and server["tls"]["cipher"]
    assert server["auth"] == {"method": "ntlm", "accepted": True}
    assert "error" not in server
    (mb,) = report["mailboxes"]
    assert mb["email"] == "ap@example.com" and mb["status"] == "ok" and mb["reason"] is None
    assert "message" not in mb
    mail, total = mb["folders"]["mail"], mb["folders"]["total"]
    assert 1 <= mail < total  # calendar, contacts, ... are folders, not mail folders

    denied = ews_config(ews, tmp_path, [{"email": "ap@example.com", "folder_denylist": ["Inbox"]}])
    report = json.loads(cli("check", denied, "--json", env={PASSWORD_ENV: PASSWORD}).stdout)
    assert report["mailboxes"][0]["folders"] == {"mail": mail - 1, "total": total}
    allowed = ews_config(ews, tmp_path, [{"email": "ap@example.com", "folder_allowlist": ["Inbox"]}])
    report = json.loads(cli("check", allowed, "--json", env={PASSWORD_ENV: PASSWORD}).stdout)
    assert report["mailboxes"][0]["folders"] == {"mail": 1, "total": total}


def test_unknown_and_ungranted_mailboxes_exit_3_and_the_good_one_is_ok(ews, tmp_path: Path):
    seq = ews.last_seq()
    config = ews_config(ews, tmp_path, ["ap@example.com", "nobody@example.com", "other@example.com"])
    proc = cli("check", config, "--json", env={PASSWORD_ENV: PASSWORD})
    assert proc.returncode == 3, proc.stderr
    report = json.loads(proc.stdout)
    assert report["ok"] is False and report["server"]["auth"]["accepted"] is True
    by = {m["email"]: m for m in report["mailboxes"]}
    assert by["ap@example.com"]["status"] == "ok"
    assert by["nobody@example.com"]["status"] == by["nobody@example.com"]["reason"] == "mailbox_not_found"
    assert "ErrorNonExistentMailbox" in by["nobody@example.com"]["message"]
    assert by["other@example.com"]["status"] == by["other@example.com"]["reason"] == "mailbox_access_denied"
    assert "ErrorAccessDenied" in by["other@example.com"]["message"]
    assert "folders" not in by["other@example.com"]
    entries = ews.log(seq)
    assert {e["operation"] for e in entries} <= READ_ONLY and not any(e["write"] for e in entries)

    human = cli("check", config, env={PASSWORD_ENV: PASSWORD})
    assert human.returncode == 3
    assert "mailbox_not_found" in human.stdout and "mailbox_access_denied" in human.stdout
    assert "1 of 3 enabled mailbox(es) reachable" in human.stdout
    for p in (proc, human):
        assert not leaks((p.stdout + p.stderr).encode(), PASSWORD)


def test_wrong_password_every_mailbox_invalid_credentials_exit_3_one_logon(ews, tmp_path: Path):
    seq = ews.last_seq()
    config = ews_config(ews, tmp_path, ["ap@example.com", "nobody@example.com", "other@example.com"])
    proc = cli("check", config, "--json", env={PASSWORD_ENV: WRONG_PASSWORD})
    assert proc.returncode == 3, proc.stderr
    report = json.loads(proc.stdout)
    assert report["server"]["reachable"] is True
    assert report["server"]["auth"] == {"method": "ntlm", "accepted": False}
    assert report["server"]["version"] is None  # the server never answered: no guess from the probe
    assert [m["status"] for m in report["mailboxes"]] == ["invalid_exchange_credentials"] * 3
    assert all(m["message"] for m in report["mailboxes"])
    # Only the first mailbox was tried: failed logons are not repeated per mailbox (account lockout).
    entries = ews.log(seq)
    assert entries and all(e["status"] == 401 for e in entries)
    assert {e.get("mailbox") or e.get("anchor") for e in entries} <= {None, "ap@example.com"}
    human = cli("check", config, env={PASSWORD_ENV: WRONG_PASSWORD})
    assert human.returncode == 3 and "ntlm: refused" in human.stdout
    for p in (proc, human):
        assert not leaks((p.stdout + p.stderr).encode(), WRONG_PASSWORD) and "Traceback" not in p.stderr


def test_server_down_exit_1_one_line(tmp_path: Path):
    url = f"https://127.0.0.1:{closed_port()}/EWS/Exchange.asmx"
    data = {"name": "down", "connection": {"server_url": url, "username": ACCOUNT, "password": {"env": PASSWORD_ENV},
                                           "access_type": "delegate", "retry_attempts": 1, "timeout_s": 5},
            "mailboxes": [{"email": "ap@example.com"}, {"email": "b@example.com"}]}
    config = write(data, tmp_path)
    proc = cli("check", config, env={PASSWORD_ENV: PASSWORD})
    assert proc.returncode == 1
    assert proc.stdout == ""
    (line,) = lines(proc.stderr)
    assert "connection refused" in line and "server_unavailable" in line and line.startswith("error: ")
    report = json.loads(cli("check", config, "--json", env={PASSWORD_ENV: PASSWORD}).stdout)
    assert report["ok"] is False and report["server"]["reachable"] is False
    assert report["server"]["error"]["reason"] == "server_unavailable" and report["server"]["tls"] is None
    assert report["server"]["auth"]["accepted"] is None
    assert [m["status"] for m in report["mailboxes"]] == ["not_checked"] * 2


def test_not_an_ews_endpoint_exit_1_one_line(ews, tmp_path: Path):
    config = ews_config(ews, tmp_path, ["ap@example.com", "nobody@example.com"],
                        server_url=ews.url.replace("/EWS/Exchange.asmx", "/not-ews"))
    proc = cli("check", config, env={PASSWORD_ENV: PASSWORD})
    assert proc.returncode == 1 and proc.stdout == ""
    (line,) = lines(proc.stderr)
    assert "server_unavailable" in line and "404" in line
    report = json.loads(cli("check", config, "--json", env={PASSWORD_ENV: PASSWORD}).stdout)
    assert report["server"]["reachable"] is False and report["server"]["tls"]["protocol"].startswith("TLSv1.")
    assert [m["status"] for m in report["mailboxes"]] == ["server_unavailable", "not_checked"]


def test_tls_verification_failure_exit_1_tls_error(ews, tmp_path: Path):
    seq = ews.last_seq()
    config = ews_config(ews, tmp_path, ["ap@example.com"], tls={"verify": True})  # no ca_bundle
    proc = cli("check", config, env={PASSWORD_ENV: PASSWORD})
    assert proc.returncode == 1
    (line,) = lines(proc.stderr)
    assert "tls_error" in line and "certificate verify failed" in line and "ca_bundle" in line
    report = json.loads(cli("check", config, "--json", env={PASSWORD_ENV: PASSWORD}).stdout)
    assert report["server"]["reachable"] is False and report["server"]["error"]["reason"] == "tls_error"
    assert report["mailboxes"][0]["status"] == "not_checked"
    assert ews.log(seq) == []  # not one request: the handshake failed


def test_configuration_problems_exit_2_one_line(ews, tmp_path: Path):
    config = ews_config(ews, tmp_path, ["ap@example.com"])
    proc = cli("check", config)  # the password's environment variable is not set
    assert proc.returncode == 2
    (line,) = lines(proc.stderr)
    assert line.startswith("error: ") and PASSWORD_ENV in line and "not set" in line
    bad = write({"name": "bad", "connection": {"server_url": ews.url, "username": "u", "password": "literal"},
                 "mailboxes": [{"email": "ap@example.com"}]}, tmp_path, "bad.yaml")
    proc = cli("check", bad)
    assert proc.returncode == 2 and "literal secrets are not allowed" in proc.stderr and "Traceback" not in proc.stderr
    ciphers = ews_config(ews, tmp_path, ["ap@example.com"], tls={"ca_bundle": ews.ca_file, "ciphers": "NO-SUCH"})
    proc = cli("check", ciphers, env={PASSWORD_ENV: PASSWORD})
    assert proc.returncode == 2 and "invalid_tls_config" in proc.stderr and "Traceback" not in proc.stderr


# ---- Graph ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def graph():
    """ap: readable by the app; other: outside the app's access policy; nobody: no such mailbox (inside the
    policy: Graph answers 403 for any address outside it, existing or not)."""
    with running_graph_server(mailboxes=["ap@example.com=generate:5", "other@example.com=generate:2"],
                              policies=["client-id=ap@example.com,nobody@example.com"]) as srv:
        yield srv


def graph_config(srv, tmp_path: Path, mailboxes: list[str]) -> str:
    conn = srv.connection(secret_env=GRAPH_SECRET_ENV, max_backoff_s=2, retry_attempts=2)
    return write({"name": "graph-check", "connection": conn, "mailboxes": [{"email": m} for m in mailboxes]}, tmp_path)


def test_graph_good_and_bad_mailboxes(graph, tmp_path: Path):
    seq = graph.last_seq()
    config = graph_config(graph, tmp_path, ["ap@example.com", "nobody@example.com", "other@example.com"])
    proc = cli("check", config, "--json", env={GRAPH_SECRET_ENV: graph.client_secret})
    assert proc.returncode == 3, proc.stderr
    report = json.loads(proc.stdout)
    server = report["server"]
    assert server["kind"] == "graph" and server["reachable"] is True
    assert server["version"] == "Microsoft Graph v1.0" and server["build"] is None
    assert server["tls"]["protocol"].startswith("TLSv1.")
    assert server["auth"] == {"method": "client_secret", "accepted": True}
    by = {m["email"]: m for m in report["mailboxes"]}
    assert by["ap@example.com"]["status"] == "ok" and by["ap@example.com"]["folders"]["mail"] >= 1
    assert by["nobody@example.com"]["status"] == "mailbox_not_found"
    assert by["other@example.com"]["status"] == "mailbox_access_denied"
    assert graph.client_secret not in proc.stdout + proc.stderr
    entries = graph.log(seq)
    assert entries and not any(e["write"] for e in entries)
    assert all(e["method"] == "GET" or e["operation"] in ("token", "batch") for e in entries)

    good = graph_config(graph, tmp_path, ["ap@example.com"])
    human = cli("check", good, env={GRAPH_SECRET_ENV: graph.client_secret})
    assert human.returncode == 0, human.stdout + human.stderr
    assert "Microsoft Graph v1.0" in human.stdout and "client_secret: accepted" in human.stdout

    wrong = cli("check", good, "--json", env={GRAPH_SECRET_ENV: "not-the-secret"})
    assert wrong.returncode == 3
    report = json.loads(wrong.stdout)
    assert report["server"]["auth"]["accepted"] is False and report["server"]["version"] is None
    assert report["mailboxes"][0]["status"] == "invalid_exchange_credentials"
    assert "not-the-secret" not in wrong.stdout + wrong.stderr


# ---- the report's logic, in process ------------------------------------------------------------------
def _config(mailboxes: list):
    from exchange_sync.config import parse_config

    return parse_config({"name": "unit", "connection": {"server_url": "https://ews.example/EWS/Exchange.asmx",
                                                        "username": "u", "password": {"env": "UNUSED"},
                                                        "access_type": "delegate"},
                         "mailboxes": [m if isinstance(m, dict) else {"email": m} for m in mailboxes],
                         "concurrency": {"mailboxes": 2}})


def test_reasons_are_reported_by_their_code_and_set_the_exit_status():
    """A reason the source learns later (server_rejected_request) is reported as is, by ``.reason``."""
    from exchange_sync.check import Scrubber, ServerCheck, _check_mailboxes, _finish
    from exchange_sync.sources import SourceError
    from exchange_sync.sources.models import FolderInfo

    class Rejected(SourceError):
        reason = "server_rejected_request"

    inbox = FolderInfo("1", "Inbox", "Inbox", "IPF.Note", "inbox")
    cal = FolderInfo("2", "Calendar", "Calendar", "IPF.Appointment", "calendar")

    class Session:
        def __init__(self, email: str) -> None:
            self.email = email

        def all_folders(self):
            if self.email.startswith("rejected"):
                raise Rejected("ErrorSchemaValidation: secret-value", mailbox=self.email)
            return [inbox, cal]

    config = _config(["ok@x.com", "rejected@x.com", {"email": "off@x.com", "enabled": False}])
    server = ServerCheck(url="https://ews.example", kind="ews", auth="ntlm", reachable=True)
    report = _finish(config, server, _check_mailboxes(config, Session, Scrubber("secret-value")))
    assert [(m.email, m.status) for m in report.mailboxes] == [
        ("ok@x.com", "ok"), ("rejected@x.com", "server_rejected_request"), ("off@x.com", "disabled")]
    assert (report.mailboxes[0].mail_folders, report.mailboxes[0].total_folders) == (1, 2)
    assert report.mailboxes[1].message == "ErrorSchemaValidation: ***"
    assert report.exit_code == 3 and report.server.auth_accepted is True
    assert report.to_dict()["mailboxes"][1] == {"email": "rejected@x.com", "status": "server_rejected_request",
                                                "reason": "server_rejected_request",
                                                "message": "ErrorSchemaValidation: ***"}


def test_graph_version_from_the_url():
    from exchange_sync.sources.graph.check import graph_version

    assert graph_version("https://graph.microsoft.com/v1.0") == "Microsoft Graph v1.0"
    assert graph_version("https://graph.microsoft.us/beta") == "Microsoft Graph beta"
    assert graph_version("https://proxy.example/graph") == "Microsoft Graph"
