"""The integration configuration: the documented shape loads; bad values fail naming the field."""

from __future__ import annotations

import copy
from datetime import datetime, timezone
from pathlib import Path

import pytest
import yaml

from exchange_sync.config import ConfigError, SecretRef, SecretResolutionError, load_config, parse_config

ISSUE_EXAMPLE = r"""
name: acme-onprem
connection:
  kind: ews
  server_url: https://mail.acme.com/EWS/Exchange.asmx
  auth: ntlm                       # ntlm | basic | oauth2
  username: ACME\svc-sync
  password: {env: EXCHANGE_PASSWORD}   # or {secret_block: acme-exchange-password}
  access_type: delegate            # delegate | impersonation
  tls: {verify: true, ca_bundle: /etc/ssl/acme-ca.pem, ciphers: "ECDHE+AESGCM", min_version: "1.2"}
mailboxes:
  - email: ap@acme.com
    start_timestamp: 2024-01-01T00:00:00Z
    folder_denylist: ["Junk Email"]
  - email: support@acme.com
destination: {kind: store, url: "sqlite:///./.exchange-sync/comments.db"}
staging: {url: ./.exchange-sync/staging}
state: {url: "sqlite:///./.exchange-sync/state.db"}
"""


@pytest.fixture
def example() -> dict:
    return yaml.safe_load(ISSUE_EXAMPLE)


def test_documented_shape_loads(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(ISSUE_EXAMPLE)
    cfg = load_config(path)
    assert cfg.connection.username == "ACME\\svc-sync"
    assert cfg.connection.access_type == "delegate"
    assert cfg.connection.tls.ciphers == "ECDHE+AESGCM"
    assert cfg.mailboxes[0].start_timestamp == datetime(2024, 1, 1, tzinfo=timezone.utc)
    assert cfg.mailboxes[0].folder_denylist == ["Junk Email"]
    assert cfg.mailboxes[1].folder_allowlist is None
    assert cfg.destination.kind == "store"
    assert [m.email for m in cfg.enabled_mailboxes] == ["ap@acme.com", "support@acme.com"]


def test_shipped_example_loads() -> None:
    root = Path(__file__).resolve().parents[1]
    assert load_config(root / "deployments" / "example.yaml").name == "example"


@pytest.mark.parametrize(
    ("mutate", "field", "words"),
    [
        (lambda d: d["connection"].pop("access_type"), "connection.access_type", "Field required"),
        (lambda d: d["connection"].__setitem__("password", "hunter2"), "connection.password", "literal secrets"),
        (lambda d: d["connection"].__setitem__("auth", "kerberos"), "connection.auth", "ntlm"),
        (lambda d: d["connection"].__setitem__("server_url", "mail.acme.com"), "connection.server_url", "http(s) URL"),
        (lambda d: d["mailboxes"][1].__setitem__("email", "support"), "mailboxes.1.email", "not an email"),
        (lambda d: d.__setitem__("mailboxes", []), "mailboxes", "at least 1"),
        (lambda d: d["connection"]["tls"].__setitem__("min_version", "1.4"), "connection.tls.min_version", "1.2"),
        (lambda d: d.__setitem__("batch_size", 513), "batch_size", "512"),
        (lambda d: d.__setitem__("name", "Acme Prod"), "name", "lowercase"),
        (lambda d: d["mailboxes"].append({"email": "AP@acme.com"}), "mailboxes", "listed twice"),
        (lambda d: d.__setitem__("extra", 1), "extra", "Extra inputs"),
        (lambda d: d["connection"].__setitem__("password", {"env": "A", "secret_block": "b"}), "connection.password",
         "exactly one"),
    ],
)
def test_invalid_config_names_the_field(example: dict, mutate, field: str, words: str) -> None:
    data = copy.deepcopy(example)
    mutate(data)
    with pytest.raises(ConfigError) as info:
        parse_config(data)
    message = str(info.value)
    assert any(line.startswith(f"{field}:") and words in line for line in message.splitlines()), message


def test_literal_password_is_never_echoed(example: dict) -> None:
    example["connection"]["password"] = "hunter2-very-secret"
    with pytest.raises(ConfigError) as info:
        parse_config(example)
    assert "hunter2" not in str(info.value)


def test_unreadable_and_non_yaml_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def test_secret_from_environment(monkeypatch) -> None:
    ref = SecretRef(env="EXSYNC_TEST_SECRET")
    monkeypatch.delenv("EXSYNC_TEST_SECRET", raising=False)
    with pytest.raises(SecretResolutionError, match="EXSYNC_TEST_SECRET is not set"):
        ref.resolve()
    monkeypatch.setenv("EXSYNC_TEST_SECRET", "s3cr3t")
    value = ref.resolve()
    assert value.get_secret_value() == "s3cr3t"
    assert "s3cr3t" not in repr(value) and "s3cr3t" not in str(value)


def test_naive_start_timestamp_is_utc(example: dict) -> None:
    example["mailboxes"][0]["start_timestamp"] = "2024-03-01T08:00:00"
    cfg = parse_config(example)
    assert cfg.mailboxes[0].start_timestamp == datetime(2024, 3, 1, 8, tzinfo=timezone.utc)


def test_folder_paths_are_normalised(example: dict) -> None:
    example["mailboxes"][0]["folder_allowlist"] = [" Inbox / Suppliers/ ", "Archive\\2024"]
    cfg = parse_config(example)
    assert cfg.mailboxes[0].folder_allowlist == ["Inbox/Suppliers", "Archive/2024"]
