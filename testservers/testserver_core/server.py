"""HTTP(S) server plumbing shared by the EWS and Graph test servers.

Why the stdlib ThreadingHTTPServer: NTLM authenticates a TCP *connection*, and a
BaseHTTPRequestHandler instance lives exactly as long as its connection, so per-connection
auth state is just an attribute of the handler. HTTP/1.1 keep-alive is kept on every response.
TLS is negotiated in the connection's own thread (not in accept()), so one slow or failing
handshake does not stall the listener.
"""

from __future__ import annotations

import json
import logging
import signal
import socket
import ssl
import sys
import threading
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Protocol

log = logging.getLogger("ews_testserver")


def now_iso() -> str:
    """The current UTC time as the request log writes it (milliseconds, ``Z``)."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class RequestLog:
    """The request log behind ``GET/DELETE /admin/log``: entries numbered by ``seq`` from 1."""

    def __init__(self) -> None:
        self._log: list[dict[str, Any]] = []
        self._log_lock = threading.Lock()
        self._log_seq = 0

    def record(self, entry: dict[str, Any]) -> int:
        with self._log_lock:
            self._log_seq += 1
            entry["seq"] = self._log_seq
            self._log.append(entry)
            return self._log_seq

    def log_since(self, since: int) -> list[dict[str, Any]]:
        with self._log_lock:
            return [e for e in self._log if e["seq"] > since]

    def clear_log(self) -> None:
        with self._log_lock:
            self._log.clear()


class IncompleteRequest(ConnectionResetError):
    """The client closed the connection before its request body was complete."""


class BaseHandler(BaseHTTPRequestHandler):
    """Keep-alive HTTP/1.1 handler: one-write responses, TCP_NODELAY, GET/POST/PUT/DELETE to ``_route``."""

    protocol_version = "HTTP/1.1"
    sys_version = ""
    logger: logging.Logger = log
    chunked_requests = False  # also read ``Transfer-Encoding: chunked`` request bodies

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in one write (see _respond); NODELAY on top so no response waits
        # for a delayed ACK (40 ms per request otherwise).
        try:
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        self.logger.debug("%s %s", self.address_string(), format % args)

    def _read_body(self) -> bytes:
        """The request body; ``IncompleteRequest`` when the client went away before sending all of it
        (a killed client is not a malformed request: nothing is answered, validated or audited)."""
        length = int(self.headers.get("Content-Length") or 0)
        if self.chunked_requests and self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                line = self.rfile.readline()
                if not line.endswith(b"\n"):
                    raise IncompleteRequest("connection closed inside a chunked request body")
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    break
                chunk = self.rfile.read(size)
                if len(chunk) < size:
                    raise IncompleteRequest("connection closed inside a chunked request body")
                chunks.append(chunk)
                self.rfile.readline()
            return b"".join(chunks)
        body = self.rfile.read(length) if length else b""
        if len(body) < length:
            raise IncompleteRequest(f"connection closed after {len(body)} of {length} body bytes")
        return body

    def _respond(self, status: int, body: bytes = b"", content_type: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        if content_type:
            self.send_header("Content-Type", content_type)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        # end_headers() would flush the headers on their own; append the body first so the
        # whole response is a single write.
        self._headers_buffer.append(b"\r\n" + body)
        self.flush_headers()

    def _drop(self) -> None:
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _route(self, method: str) -> None:
        raise NotImplementedError

    def _serve(self, method: str) -> None:
        try:
            self._route(method)
        except IncompleteRequest:
            self.close_connection = True

    def do_POST(self) -> None:  # noqa: N802
        self._serve("POST")

    def do_GET(self) -> None:  # noqa: N802
        self._serve("GET")

    def do_PUT(self) -> None:  # noqa: N802
        self._serve("PUT")

    def do_DELETE(self) -> None:  # noqa: N802
        self._serve("DELETE")


class ThreadedServer(ThreadingHTTPServer):
    """ThreadingHTTPServer that does the TLS handshake (if ``ssl_context``) in the connection's thread."""

    daemon_threads = True
    allow_reuse_address = True
    ssl_context: ssl.SSLContext | None = None

    def finish_request(self, request: Any, client_address: Any) -> None:
        if self.ssl_context is not None:
            try:
                request.settimeout(30)
                request = self.ssl_context.wrap_socket(request, server_side=True)
                request.settimeout(None)
            except (ssl.SSLError, OSError) as exc:
                log.info("TLS handshake with %s failed: %s", client_address, exc)
                try:
                    request.close()
                except OSError:
                    pass
                return
        super().finish_request(request, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("connection error from %s", client_address, exc_info=True)


TLS_VERSIONS = {"1.0": ssl.TLSVersion.TLSv1, "1.1": ssl.TLSVersion.TLSv1_1,
                "1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}


def make_tls_context(workdir: Path, *, host: str, cert: str | None = None, key: str | None = None,
                     cert_type: str = "rsa", ciphers: str | None = None, min_tls: str | None = None,
                     max_tls: str | None = None) -> tuple[ssl.SSLContext, str | None]:
    """(server context, CA file path or None when ``cert``/``key`` were given).

    Without ``cert``, a throwaway CA (trustme) issues a certificate for localhost, 127.0.0.1, ::1
    and ``host``; its PEM is written to ``workdir/ca.pem``.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca_file = None
    if cert:
        ctx.load_cert_chain(cert, key)
    else:
        import trustme

        key_type = trustme.KeyType.ECDSA if cert_type == "ecdsa" else trustme.KeyType.RSA
        ca = trustme.CA(key_type=key_type)
        identities = ["localhost", "127.0.0.1", "::1"]
        if host not in identities and host not in ("0.0.0.0", "::"):
            identities.append(host)
        leaf = ca.issue_cert(*identities, key_type=key_type)
        leaf.configure_cert(ctx)
        ca_path = workdir / "ca.pem"
        ca.cert_pem.write_to_path(str(ca_path))
        ca_file = str(ca_path)
    if min_tls:
        ctx.minimum_version = TLS_VERSIONS[min_tls]
    if ciphers:
        ctx.set_ciphers(ciphers)
        # OpenSSL cipher strings do not govern TLS 1.3 suites; cap at 1.2 so the restriction
        # bites unless the caller explicitly allows 1.3.
        max_tls = max_tls or "1.2"
    if max_tls:
        ctx.maximum_version = TLS_VERSIONS[max_tls]
    return ctx, ca_file


class BackgroundServer:
    """``start()`` serves in a background thread; ``serve_forever()`` blocks; ``stop()`` shuts down.

    Subclasses set ``self.httpd`` (a ``ThreadedServer``) and ``self.config`` (with ``host``).
    """

    thread_name = "testserver"
    httpd: ThreadedServer
    config: Any
    _thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        """scheme://host:port of the listener (wildcard hosts as 127.0.0.1, IPv6 in brackets)."""
        host, port = self.httpd.server_address[:2]
        host = self.config.host if self.config.host not in ("0.0.0.0", "::", "") else "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        return f"{'https' if self.httpd.ssl_context is not None else 'http'}://{host}:{port}"

    def start(self) -> Any:
        self._thread = threading.Thread(target=self.httpd.serve_forever, name=self.thread_name, daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self.httpd.serve_forever()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)


class _Serving(Protocol):
    httpd: ThreadedServer

    def info(self) -> dict[str, Any]: ...

    def serve_forever(self) -> None: ...


def configure_logging(verbose: bool) -> None:
    """The CLI's logging: stderr, DEBUG with ``--verbose`` (every request), else WARNING."""
    logging.basicConfig(stream=sys.stderr, level=logging.DEBUG if verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def serve_until_signalled(server: _Serving) -> None:
    """The CLI's main loop: print ``server.info()`` as one JSON line on stdout, serve until SIGTERM/SIGINT."""

    def stop(_signum: int, _frame: object) -> None:
        # shutdown() waits for serve_forever() to return, so it must run off the main thread.
        threading.Thread(target=server.httpd.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    sys.stdout.write(json.dumps(server.info()) + "\n")
    sys.stdout.flush()
    try:
        server.serve_forever()
    finally:
        server.httpd.server_close()
