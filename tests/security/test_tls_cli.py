"""TLS at the pipeline level: `exchange-sync run` against the EWS test server with a wrong CA, no CA
(verification is on by default) and a cipher list the server cannot meet; the CLI names the cause.
Source-level TLS tests (handshake details, TLS 1.3 caveat) are in tests/source/test_ews_faults_tls.py.
"""

from __future__ import annotations

import secrets

import pytest

from ews_testserver.testing import running_server
from tests.support.pipeline import ACCOUNT, PASSWORD_ENV, make_config, run_cli

pytestmark = pytest.mark.timeout(300)

PASSWORD = "tls-" + secrets.token_hex(8)


@pytest.fixture(scope="module")
def rsa_srv():
    with running_server(accounts=[f"{ACCOUNT}:{PASSWORD}"], mailboxes=["ap@example.com=generate:2"],
                        grants=[f"{ACCOUNT}=ap@example.com"], tls=True, auth="ntlm") as server:
        yield server


@pytest.fixture(scope="module")
def ecdsa_srv():
    with running_server(accounts=[f"{ACCOUNT}:{PASSWORD}"], mailboxes=["ap@example.com=generate:2"],
                        grants=[f"{ACCOUNT}=ap@example.com"], tls=True, auth="ntlm", cert_type="ecdsa") as server:
        yield server


def test_verification_is_on_by_default():
    from exchange_sync.config import parse_config

    cfg = parse_config({"name": "x", "connection": {"server_url": "https://mail.example.com/EWS/Exchange.asmx",
                                                    "username": "u", "password": {"env": "P"},
                                                    "access_type": "delegate"},
                        "mailboxes": [{"email": "a@example.com"}]})
    assert cfg.connection.tls.verify is True and cfg.connection.tls.ca_bundle is None


def cli(data, tmp_path, prefect_api):
    run = run_cli(data, tmp_path, env={PASSWORD_ENV: PASSWORD}, prefect_api=prefect_api)
    return run, run.stdout + run.stderr


@pytest.mark.parametrize("ca", ["system", "other"])
def test_untrusted_certificate_fails_with_a_clear_message(rsa_srv, tmp_path, prefect_api, ca):
    import trustme

    tls: dict = {"verify": True}
    if ca == "other":
        other = tmp_path / "other-ca.pem"
        trustme.CA().cert_pem.write_to_path(str(other))
        tls["ca_bundle"] = str(other)
    data = make_config(rsa_srv, tmp_path, ["ap@example.com"], connection={"tls": tls})
    run, output = cli(data, tmp_path, prefect_api)
    assert run.returncode == 1, output[-3000:]
    assert "tls_error" in output and "certificate verify failed" in output and "ca_bundle" in output, output[-3000:]
    assert rsa_srv.log() == [] or all(e["operation"] != "GetItem" for e in rsa_srv.log())


def test_cipher_outside_the_servers_list_fails_the_handshake(ecdsa_srv, tmp_path, prefect_api):
    # AES128-SHA is an RSA-key-exchange suite: an ECDSA certificate cannot serve it; TLS 1.3 is excluded
    # so the OpenSSL cipher string is the whole list (it does not govern TLS 1.3 suites).
    tls = {"verify": True, "ca_bundle": ecdsa_srv.ca_file, "ciphers": "AES128-SHA", "max_version": "1.2"}
    data = make_config(ecdsa_srv, tmp_path, ["ap@example.com"], connection={"tls": tls})
    mark = ecdsa_srv.last_seq()
    run, output = cli(data, tmp_path, prefect_api)
    assert run.returncode == 1, output[-3000:]
    assert "tls_error" in output and "no shared cipher" in output, output[-3000:]
    assert ecdsa_srv.log(mark) == []  # no request got through


def test_matching_cipher_list_syncs(ecdsa_srv, tmp_path, prefect_api):
    tls = {"verify": True, "ca_bundle": ecdsa_srv.ca_file, "ciphers": "ECDHE-ECDSA-AES256-GCM-SHA384",
           "min_version": "1.2", "max_version": "1.2"}
    data = make_config(ecdsa_srv, tmp_path, ["ap@example.com"], connection={"tls": tls})
    run, output = cli(data, tmp_path, prefect_api)
    assert run.returncode == 0, output[-3000:]
