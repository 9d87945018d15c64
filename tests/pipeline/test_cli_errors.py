"""The errors a user sees (issue #17's table): each is one `error:` line with the documented exit
status (2: command line or configuration, checked before anything starts; 1: the run failed), and
never a Python traceback (those only with --debug, or in the Prefect run log)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.timeout(300)

PW_ENV = "EXSYNC_ERRORS_PW"


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def config(tmp_path: Path, **changes) -> dict:
    data = {
        "name": "errors",
        "connection": {"server_url": f"https://127.0.0.1:{closed_port()}/EWS/Exchange.asmx", "username": "u",
                       "password": {"env": PW_ENV}, "access_type": "delegate", "max_backoff_s": 1,
                       "retry_attempts": 1},
        "mailboxes": [{"email": "ap@example.com"}],
        "destination": {"url": f"sqlite:///{tmp_path / 'c.db'}"},
        "state": {"url": f"sqlite:///{tmp_path / 's.db'}"},
        "staging": {"url": str(tmp_path / "staging")},
    }
    for key, value in changes.items():
        target = data
        *parents, last = key.split(".")
        for parent in parents:
            target = target[parent]
        target[last] = value
    return data


def write(tmp_path: Path, data: dict, name: str = "errors.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def cli(*args: str, cwd: Path, env: dict | None = None, prefect: str | None = None,
        timeout: float = 240) -> tuple[subprocess.CompletedProcess, float]:
    full = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", PW_ENV)}
    full.update({"PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1"})
    # Without a Prefect API configured, reaching Prefect would start a temporary server (~10-30 s):
    # the cases checked "at once" must not get that far.
    if prefect:
        full["PREFECT_API_URL"] = prefect
    full.update(env or {})
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "exchange_sync", *args], cwd=cwd, env=full, capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    return proc, time.monotonic() - started


def one_error_line(proc: subprocess.CompletedProcess, code: int, *fragments: str) -> str:
    assert proc.returncode == code, proc.stdout[-2000:] + proc.stderr[-4000:]
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr[-4000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr[-4000:]
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return errors[0]


def test_config_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(yaml.safe_dump(config(tmp_path)).encode() + "# Gr\xfc\xdfe\n".encode("latin-1"))
    proc, _ = cli("run", str(path), cwd=tmp_path)
    one_error_line(proc, 2, "not UTF-8")
    assert proc.stderr.count("\n") == 1


def test_password_env_unset_is_checked_before_the_run(tmp_path: Path) -> None:
    proc, seconds = cli("run", str(write(tmp_path, config(tmp_path))), cwd=tmp_path)
    one_error_line(proc, 2, "connection.password", PW_ENV, "not set")
    assert seconds < 30 and not (tmp_path / "s.db").exists()  # no run started, nothing recorded


@pytest.mark.parametrize("tls,fragment", [
    ({"ciphers": "NOT-A-CIPHER"}, "connection.tls.ciphers"),
    ({"ca_bundle": "/nonexistent/ca.pem"}, "connection.tls.ca_bundle"),
])
def test_bad_tls_settings_are_configuration_errors(tmp_path: Path, tls: dict, fragment: str) -> None:
    proc, seconds = cli("run", str(write(tmp_path, config(tmp_path, **{"connection.tls": tls}))), cwd=tmp_path,
                        env={PW_ENV: "pw"})
    one_error_line(proc, 2, fragment)
    assert seconds < 30


def test_mailbox_not_in_the_config_at_once(tmp_path: Path) -> None:
    proc, seconds = cli("run", str(write(tmp_path, config(tmp_path))), "--mailbox", "nobody@example.com",
                        cwd=tmp_path, env={PW_ENV: "pw"})
    one_error_line(proc, 2, "nobody@example.com", "not in the configuration")
    assert seconds < 30
    proc, _ = cli("backfill", str(write(tmp_path, config(tmp_path))), "--mailbox", "nobody@example.com",
                  cwd=tmp_path, env={PW_ENV: "pw"})
    one_error_line(proc, 2, "nobody@example.com")


@pytest.mark.parametrize("command", ["run", "status", "backfill"])
def test_mistyped_config_path_at_once(tmp_path: Path, command: str) -> None:
    write(tmp_path, config(tmp_path))
    proc, seconds = cli(command, "deployments/erors.yaml", cwd=tmp_path)
    one_error_line(proc, 2, "no such configuration file", "erors.yaml")
    assert seconds < 30  # no Prefect server was started to look it up


def test_broken_deployment_file_looked_up_by_name_shows_its_validation_error(tmp_path: Path) -> None:
    (tmp_path / "deployments").mkdir()
    broken = config(tmp_path, name="acme")
    del broken["connection"]["access_type"]
    write(tmp_path / "deployments", broken, "acme.yaml")
    proc, seconds = cli("status", "acme", cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "connection.access_type: Field required" in proc.stderr
    assert "neither a configuration file" not in proc.stderr
    assert seconds < 30


def test_transform_missing_file(tmp_path: Path) -> None:
    proc, _ = cli("transform", str(tmp_path / "missing.eml"), cwd=tmp_path)
    one_error_line(proc, 2, "missing.eml")


def test_unreachable_postgresql_state_database(tmp_path: Path, prefect_api: str) -> None:
    url = f"postgresql+psycopg://sync@127.0.0.1:{closed_port()}/state"
    path = write(tmp_path, config(tmp_path, **{"state.url": url, "destination.url": url}))
    proc, _ = cli("run", str(path), cwd=tmp_path, env={PW_ENV: "pw"}, prefect=prefect_api)
    one_error_line(proc, 1, "state_unavailable", f"127.0.0.1:{url.split(':')[-1]}")
    proc, _ = cli("status", str(path), cwd=tmp_path)
    one_error_line(proc, 1, "state_unavailable")


def test_failed_run_prints_the_error_line_only(tmp_path: Path, prefect_api: str) -> None:
    path = write(tmp_path, config(tmp_path))
    proc, _ = cli("run", str(path), "--json", cwd=tmp_path, env={PW_ENV: "pw"}, prefect=prefect_api)
    line = one_error_line(proc, 1, "server_unavailable")
    assert line.startswith("error: server_unavailable:")
    assert "Encountered exception" not in proc.stderr  # Prefect's failure report with its traceback
    # --debug shows the traceback.
    proc, _ = cli("run", str(path), "--json", "--debug", cwd=tmp_path, env={PW_ENV: "pw"}, prefect=prefect_api)
    assert proc.returncode == 1 and "Traceback" in proc.stderr


def test_status_shows_server_strings_as_text_not_markup(ews, prefect_api, password, tmp_path: Path) -> None:
    """A folder named with rich markup ("[link=...]", "[bold]", ":emoji:") is printed as it is, not turned
    into a terminal hyperlink or style."""
    from ews_testserver.testing import date_n, make_mime

    from .conftest import PASSWORD_ENV, make_config

    srv = ews(["ap@example.com=generate:2"])
    hostile = "[link=mailto:x@evil.example]Click [bold red]x :thumbs_up:"  # no '/': the server's path separator
    srv.create_folder("ap@example.com", f"Inbox/{hostile}")
    srv.add_message("ap@example.com", make_mime("m", "<markup-1@acme.com>", date_n(3)), folder=f"Inbox/{hostile}")
    path = write(tmp_path, make_config(srv, tmp_path, ["ap@example.com"]))
    proc, _ = cli("run", str(path), "--json", cwd=tmp_path, env={PASSWORD_ENV: password}, prefect=prefect_api)
    assert proc.returncode == 0, proc.stderr[-3000:]
    env = {PASSWORD_ENV: password, "FORCE_COLOR": "1", "COLUMNS": "400"}  # as in a terminal: styles and links on
    proc, _ = cli("status", str(path), cwd=tmp_path, env=env, prefect=prefect_api)
    assert proc.returncode == 0, proc.stderr
    assert "\x1b]8;" not in proc.stdout  # no OSC 8 hyperlink escape sequence
    import re

    text = re.sub(r"\x1b\[[0-9;]*m", "", proc.stdout)
    assert "Inbox/[link=mailto:x@evil.example]Click [bold red]x" in text and ":thumbs_up:" in text, text


@pytest.mark.parametrize("command", [("status",), ("usage",), ("comments", "count"), ("replay",)])
def test_unreachable_database_for_reading_commands(tmp_path: Path, command: tuple[str, ...]) -> None:
    url = f"postgresql+psycopg://sync@127.0.0.1:{closed_port()}/state"
    path = write(tmp_path, config(tmp_path, **{"state.url": url, "destination.url": url}))
    proc, _ = cli(*command, str(path), cwd=tmp_path)
    one_error_line(proc, 1, "state_unavailable")
