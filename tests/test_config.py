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


# --- database passwords as secret references; cleartext http refused (issue #17) ---------------------

PG = "postgresql+psycopg://sync@db.acme.com/state"


@pytest.mark.parametrize("section", ["state", "destination"])
def test_literal_password_in_a_database_url_is_refused(example: dict, section: str) -> None:
    example[section] = {"url": "postgresql+psycopg://sync:hunter2-literal@db.acme.com/x"}
    with pytest.raises(ConfigError) as err:
        parse_config(example)
    assert f"{section}.url: a password in the database URL is not allowed" in str(err.value)
    assert "hunter2-literal" not in str(err.value)


@pytest.mark.parametrize("url", ["notaurl", "mysql://u@h/db"])
def test_database_url_must_be_sqlite_or_postgresql(example: dict, url: str) -> None:
    example["state"] = {"url": url}
    with pytest.raises(ConfigError, match="state.url"):
        parse_config(example)


def test_database_password_from_a_secret_reference(example: dict, monkeypatch) -> None:
    from exchange_sync.store.engine import create_store_engine

    example["state"] = {"url": PG, "password": {"env": "EXSYNC_PG_PW"}}
    example["destination"] = {"kind": "store", "url": PG.replace("/state", "/comments"),
                              "password": {"secret_block": "acme-pg"}}
    cfg = parse_config(example)
    assert cfg.state.url == PG and cfg.state.url.password_ref == SecretRef(env="EXSYNC_PG_PW")
    # The parameters Prefect stores and shows hold the reference, never a value; a round trip keeps it.
    dumped = cfg.model_dump(mode="json")
    assert dumped["state"] == {"url": PG, "password": {"env": "EXSYNC_PG_PW", "secret_block": None}}
    again = parse_config(dumped)
    assert again.state.url.password_ref == SecretRef(env="EXSYNC_PG_PW")
    # The engine resolves it when it is created, into its URL object only.
    monkeypatch.setenv("EXSYNC_PG_PW", "s3cret-pg-value")
    engine = create_store_engine(cfg.state.url, create_tables=False)
    try:
        assert engine.url.password == "s3cret-pg-value" and "s3cret" not in repr(engine.url)
    finally:
        engine.dispose()
    monkeypatch.delenv("EXSYNC_PG_PW")
    with pytest.raises(SecretResolutionError):
        create_store_engine(cfg.state.url, create_tables=False)


def test_password_only_for_postgresql(example: dict) -> None:
    example["state"] = {"url": "sqlite:///./s.db", "password": {"env": "X"}}
    with pytest.raises(ConfigError, match="PostgreSQL"):
        parse_config(example)


@pytest.mark.parametrize("auth", ["basic", "ntlm"])
def test_cleartext_exchange_url_needs_allow_insecure_http(example: dict, auth: str) -> None:
    example["connection"]["server_url"] = "http://mail.acme.com/EWS/Exchange.asmx"
    example["connection"]["auth"] = auth
    del example["connection"]["tls"]
    with pytest.raises(ConfigError, match="allow_insecure_http"):
        parse_config(example)
    example["connection"]["allow_insecure_http"] = True
    assert parse_config(example).connection.server_url.startswith("http://")
    # Loopback (a local proxy, the test server) is not the network.
    example["connection"]["allow_insecure_http"] = False
    example["connection"]["server_url"] = "http://127.0.0.1:8080/EWS/Exchange.asmx"
    parse_config(example)


def test_cleartext_reinfer_url_needs_allow_insecure_http(example: dict) -> None:
    example["destination"] = {"kind": "reinfer", "url": "http://reinfer.acme.com/api", "project": "p",
                              "source": "s", "token": {"env": "REINFER_TOKEN"}}
    with pytest.raises(ConfigError, match="destination: .*allow_insecure_http"):
        parse_config(example)
    example["destination"]["allow_insecure_http"] = True
    parse_config(example)


def test_config_file_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(ISSUE_EXAMPLE.encode() + "# Gr\xfc\xdfe\n".encode("latin-1"))
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(path)


def test_check_runnable_names_each_problem(example: dict, monkeypatch) -> None:
    from exchange_sync.config import check_runnable

    monkeypatch.delenv("EXCHANGE_PASSWORD", raising=False)
    example["connection"]["tls"] = {"ca_bundle": "/nonexistent/ca.pem", "ciphers": "NOT-A-CIPHER"}
    with pytest.raises(ConfigError) as err:
        check_runnable(parse_config(example))
    message = str(err.value)
    assert "\n" not in message
    for fragment in ("connection.password: environment variable EXCHANGE_PASSWORD", "connection.tls.ca_bundle",
                     "connection.tls.ciphers"):
        assert fragment in message
