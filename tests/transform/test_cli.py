"""`exchange-sync transform` over files, a folder and an mbox; --json lines are parseable."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from exchange_sync.cli import app

SAMPLES = Path(__file__).parent / "samples"


def _lines(output: str) -> list[dict]:
    return [json.loads(line) for line in output.splitlines() if line.strip()]


def test_folder_json_lines(tmp_path):
    folder = tmp_path / "mail"
    (folder / "sub").mkdir(parents=True)
    for path in sorted(SAMPLES.glob("*.eml"))[:3]:
        shutil.copy(path, folder / "sub" / path.name)
    (folder / "empty.eml").write_bytes(b"")
    result = CliRunner().invoke(app, ["transform", str(folder), "--json", "--mailbox", "ap@x.example", "--folder", "Inbox"])
    assert result.exit_code == 0, result.output
    lines = _lines(result.output)
    assert len(lines) == 4
    rejected = [line for line in lines if "rejected" in line]
    assert rejected == [{"rejected": str(folder / "empty.eml"), "reason": "empty MIME content"}]
    comments = [line for line in lines if "id" in line]
    assert all(c["user_properties"]["string:Mailbox"] == "ap@x.example" for c in comments)
    assert all(c["user_properties"]["string:Folder"] == "Inbox" for c in comments)
    assert all("from" in c["messages"][0] for c in comments)


def test_mbox_in_a_subprocess(tmp_path):
    mbox = tmp_path / "box.mbox"
    chunks = []
    for path in sorted(SAMPLES.glob("*.eml"))[:2]:
        chunks.append(b"From sender@example.com Mon Nov  2 09:00:00 2026\n" + path.read_bytes().replace(b"\r\n", b"\n"))
    mbox.write_bytes(b"\n".join(chunks) + b"\n")
    result = subprocess.run(
        [sys.executable, "-m", "exchange_sync", "transform", str(mbox), "--json"],
        capture_output=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr.decode()
    lines = _lines(result.stdout.decode("utf-8"))
    assert [line.get("rejected") for line in lines] == [None, None]
    assert lines[0]["messages"][0]["body"]["text"]
    # A path that does not exist is a wrong command line (f66cfe0): exit status 2, nothing transformed.
    missing = tmp_path / "missing.eml"
    result = subprocess.run(
        [sys.executable, "-m", "exchange_sync", "transform", str(mbox), str(missing), "--json"],
        capture_output=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 2
    assert "no such file or directory" in result.stderr.decode() and not result.stdout.strip()


def test_human_view_shows_body_signature_and_properties():
    sample = SAMPLES / "outlook_desktop_plain_de.eml"
    result = CliRunner().invoke(app, ["transform", str(sample)])
    assert result.exit_code == 0
    assert "--- body" in result.output and "--- signature" in result.output and "Jana Schulz" in result.output
    assert "string:Sender Domain: musterfirma.example" in result.output


def test_wrong_command_line_exits_non_zero():
    assert CliRunner().invoke(app, ["transform"]).exit_code != 0
    assert CliRunner().invoke(app, ["transform", "x.eml", "--no-such-flag"]).exit_code != 0
