"""`exchange-sync transform`: emails (.eml files, folders of them, mbox files) to comments.

One JSON object per line with ``--json`` (the comment in API form, or
``{"rejected": "<path or path#index>", "reason": "..."}``); a readable view without it, which is
how users debug a strange email. Exit status 0 unless the command line is wrong (2, e.g. a path that
does not exist).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, List, Optional

import typer

from exchange_sync.cli import app


def _is_mbox(path: Path) -> bool:
    if path.suffix.lower() in (".mbox", ".mbx"):
        return True
    try:
        with path.open("rb") as handle:
            return handle.read(5) == b"From "
    except OSError:
        return False


def _inputs(path: Path) -> Iterator[tuple[str, bytes | None, str | None]]:
    """(label, raw bytes or None, error) for every email under ``path``."""
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in (".eml", ".mbox", ".mbx"))
        for file in files:
            yield from _inputs(file)
        return
    if _is_mbox(path):
        import mailbox

        try:
            box = mailbox.mbox(str(path), create=False)
            keys = list(box.keys())
        except Exception as exc:  # noqa: BLE001 - an unreadable mbox is reported, not fatal
            yield str(path), None, f"unreadable mbox: {exc}"
            return
        for index, key in enumerate(keys):
            try:
                yield f"{path}#{index}", box.get_bytes(key), None
            except Exception as exc:  # noqa: BLE001
                yield f"{path}#{index}", None, f"unreadable mbox entry: {exc}"
        return
    try:
        yield str(path), path.read_bytes(), None
    except OSError as exc:
        yield str(path), None, f"unreadable file: {exc.strerror or exc}"


def _human(label: str, api: dict) -> str:
    message = api["messages"][0]
    lines = [
        f"=== {label}",
        f"id:        {api['id']}",
        f"thread:    {api.get('thread_id', '')}",
        f"timestamp: {api['timestamp']}",
        f"subject:   {message.get('subject', {}).get('text', '')}",
        f"from:      {message.get('from', '')}",
    ]
    for key in ("to", "cc", "bcc"):
        if message.get(key):
            lines.append(f"{key + ':':<10} {', '.join(message[key])}")
    lines.append(f"sent_at:   {message.get('sent_at', '')}")
    lines.append(f"language:  {message.get('language', '')}")
    lines.append("--- body")
    lines.append(message.get("body", {}).get("text", ""))
    lines.append("--- signature")
    lines.append(message.get("signature", {}).get("text", ""))
    lines.append("--- properties")
    for key, value in sorted(api.get("user_properties", {}).items()):
        lines.append(f"{key}: {value}")
    if api.get("attachments"):
        lines.append("--- attachments")
        for item in api["attachments"]:
            inline = " (inline)" if item.get("inline") else ""
            lines.append(f"{item['name']}  {item['content_type']}  {item['size']} bytes{inline}")
    return "\n".join(lines) + "\n"


@app.command("transform")
def transform(
    paths: List[Path] = typer.Argument(..., help=".eml files, folders of them (recursive) or mbox files."),
    json_lines: bool = typer.Option(False, "--json", help="One JSON object per line (comment in API form)."),
    mailbox: Optional[str] = typer.Option(None, "--mailbox", help="Fill the Mailbox property."),
    folder: Optional[str] = typer.Option(None, "--folder", help="Fill the Folder property."),
) -> None:
    """Turn emails into comments; show what the cleaning made of them."""
    import json
    import sys

    from exchange_sync.transform import ExchangeMeta, Rejection, email_to_comment

    missing = [str(path) for path in paths if not path.exists()]
    if missing:  # a wrong command line: nothing is transformed (exit status 2, as for other bad arguments)
        typer.echo(f"error: no such file or directory: {', '.join(missing)}", err=True)
        raise typer.Exit(2)
    meta = ExchangeMeta(mailbox=mailbox, folder_path=folder)
    out = sys.stdout
    for path in paths:
        for label, raw, error in _inputs(path):
            if raw is None:
                result: object = Rejection(reason=error or "unreadable")
            else:
                try:
                    result = email_to_comment(raw, meta)
                except Exception as exc:  # noqa: BLE001 - never crash on one input; report it
                    result = Rejection(reason=f"internal error: {type(exc).__name__}: {exc}")
            if isinstance(result, Rejection):
                if json_lines:
                    out.write(json.dumps({"rejected": label, "reason": result.reason}, ensure_ascii=False) + "\n")
                else:
                    out.write(f"=== {label}\nrejected: {result.reason}\n")
                continue
            api = result.to_api()
            out.write((json.dumps(api, ensure_ascii=False) if json_lines else _human(label, api)) + "\n")
        out.flush()
