"""`exchange-sync ews-server`: start the EWS test server (a real SOAP endpoint for exchangelib)."""

from __future__ import annotations

from typing import List, Optional

import typer

from exchange_sync.cli import app

# The test servers are their own distribution (testservers/, exchange-sync-testservers), not part of
# the exchange-sync wheel. Without it the command says so in one line and exits with this status
# (2, as a bad option: the command cannot run in this environment).
EXIT_NOT_INSTALLED = 2
NOT_INSTALLED = ("error: the {what} test server is not installed: pip install -e ./testservers "
                 "(it is test infrastructure, not part of exchange-sync)")
TEST_SERVER_PACKAGES = ("testserver_core", "ews_testserver", "graph_testserver")


def not_installed(exc: ModuleNotFoundError, what: str) -> None:
    """Exit with NOT_INSTALLED if ``exc`` is a missing test server package; return otherwise (the
    caller re-raises: a module missing *inside* an installed test server is a bug, with its traceback)."""
    if (exc.name or "").split(".")[0] in TEST_SERVER_PACKAGES:
        typer.echo(NOT_INSTALLED.format(what=what), err=True)
        raise typer.Exit(EXIT_NOT_INSTALLED) from None


@app.command("ews-server")
def ews_server(
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    port: int = typer.Option(0, help="TCP port (0: pick a free one; see the JSON line)."),
    tls: bool = typer.Option(False, "--tls", help="Serve HTTPS (certificates made at start unless --cert/--key)."),
    cert: Optional[str] = typer.Option(None, help="PEM certificate chain for HTTPS."),
    key: Optional[str] = typer.Option(None, help="PEM private key for --cert."),
    ciphers: Optional[str] = typer.Option(None, help="OpenSSL cipher string; caps TLS at 1.2 unless --max-tls 1.3."),
    min_tls: Optional[str] = typer.Option(None, "--min-tls", help="Minimum TLS version: 1.0, 1.1, 1.2, 1.3."),
    max_tls: Optional[str] = typer.Option(None, "--max-tls", help="Maximum TLS version: 1.0, 1.1, 1.2, 1.3."),
    cert_type: str = typer.Option("rsa", "--cert-type", help="Key type of generated certificates: rsa or ecdsa."),
    auth: List[str] = typer.Option(["ntlm,basic"], "--auth", help="Auth schemes offered: ntlm, basic (repeat or comma-separate)."),
    account: List[str] = typer.Option([], "--account", help="USER:PASSWORD[:impersonation] (repeatable)."),
    mailbox: List[str] = typer.Option([], "--mailbox", help="ADDRESS=PATH (.eml folder, mbox) or ADDRESS=generate:N."),
    grant: List[str] = typer.Option([], "--grant", help="USER=ADDRESS: delegate access (repeatable)."),
    seed: int = typer.Option(4711, help="Seed for generate:N."),
    admin_token: Optional[str] = typer.Option(None, "--admin-token", help="Fixed admin bearer token (default: random)."),
    exchange_version: str = typer.Option(
        "Exchange2016", "--exchange-version",
        help="Exchange version to behave as: Exchange2010_SP2, Exchange2013, Exchange2016, Exchange2019, Online "
             "(its ServerVersionInfo, accepted RequestServerVersion values and schema)."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log requests to stderr."),
) -> None:
    """Serve EWS (SOAP) for exchangelib over mailboxes loaded from .eml folders, mbox files or generated mail.

    Prints one JSON line (url, admin_url, ca_file, admin_token, ...) on stdout when ready and
    serves until SIGTERM/SIGINT (exit status 0). Exit status 2: invalid options, or the test servers
    (./testservers, test infrastructure) are not installed.
    """
    try:
        from ews_testserver.schema import PROFILES
        from ews_testserver.server import EwsServer, ServerConfig
        from testserver_core.server import configure_logging, serve_until_signalled
    except ModuleNotFoundError as exc:
        not_installed(exc, "EWS")
        raise

    configure_logging(verbose)
    schemes = tuple(s.strip().lower() for a in auth for s in a.split(",") if s.strip())
    bad = [s for s in schemes if s not in ("ntlm", "basic")]
    if bad or cert_type not in ("rsa", "ecdsa") or (bool(cert) != bool(key)):
        typer.echo(f"invalid options: auth={bad or 'ok'} cert-type={cert_type} cert/key must be given together",
                   err=True)
        raise typer.Exit(2)
    if exchange_version not in PROFILES:
        typer.echo(f"invalid --exchange-version {exchange_version!r}; one of {', '.join(PROFILES)}", err=True)
        raise typer.Exit(2)
    for v in (min_tls, max_tls):
        if v is not None and v not in ("1.0", "1.1", "1.2", "1.3"):
            typer.echo(f"invalid TLS version {v!r}", err=True)
            raise typer.Exit(2)
    config = ServerConfig(
        host=host, port=port, tls=tls or bool(cert), cert=cert, key=key, ciphers=ciphers, min_tls=min_tls,
        max_tls=max_tls, cert_type=cert_type, auth=schemes or ("ntlm", "basic"),
        accounts=list(account) or ["user@example.com:secret"],
        mailboxes=list(mailbox) or ["user@example.com=generate:100"], grants=list(grant), seed=seed,
        admin_token=admin_token, exchange_version=exchange_version,
    )
    try:
        server = EwsServer(config)
    except (ValueError, FileNotFoundError, OSError) as exc:
        typer.echo(f"ews-server: {exc}", err=True)
        raise typer.Exit(2) from exc
    serve_until_signalled(server)
