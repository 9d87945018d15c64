"""TLS for the EWS connection: one ``ssl.SSLContext`` per EwsSource, installed through a per-source
requests ``HTTPAdapter`` subclass (never through exchangelib's global ``BaseProtocol.HTTP_ADAPTER_CLS``).

What ``tls.ciphers`` restricts: ``SSLContext.set_ciphers`` only governs TLS 1.2-and-below cipher suites;
OpenSSL's TLS 1.3 suites (TLS_AES_*, TLS_CHACHA20_*) stay enabled whatever the string says. A cipher
list therefore only *means* what it says together with ``max_version: "1.2"``.
"""

from __future__ import annotations

import logging
import ssl
import types
import warnings
from typing import Any

import requests
import requests.adapters
import urllib3

from ..config import TlsConfig
from .errors import SourceError

_VERSIONS = {
    "1.0": ssl.TLSVersion.TLSv1,
    "1.1": ssl.TLSVersion.TLSv1_1,
    "1.2": ssl.TLSVersion.TLSv1_2,
    "1.3": ssl.TLSVersion.TLSv1_3,
}


class TlsConfigError(SourceError):
    """The TLS settings cannot be applied locally (bad cipher string, unreadable CA bundle)."""

    reason = "invalid_tls_config"


def build_ssl_context(tls: TlsConfig) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if tls.verify:
        ctx.check_hostname = True
        ctx.verify_mode = ssl.CERT_REQUIRED
        if tls.ca_bundle is not None:
            # The bundle *replaces* the default trust store, as requests' verify=<path> does.
            try:
                ctx.load_verify_locations(cafile=str(tls.ca_bundle))
            except (OSError, ssl.SSLError) as exc:
                raise TlsConfigError(f"connection.tls.ca_bundle {tls.ca_bundle}: cannot load ({exc})") from None
        else:
            ctx.load_default_certs()
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if tls.min_version:
        ctx.minimum_version = _VERSIONS[tls.min_version]
    if tls.max_version:
        ctx.maximum_version = _VERSIONS[tls.max_version]
    if tls.ciphers:
        try:
            ctx.set_ciphers(tls.ciphers)
        except ssl.SSLError:
            raise TlsConfigError(
                f"connection.tls.ciphers {tls.ciphers!r} matches no cipher this OpenSSL supports"
            ) from None
    return ctx


def requests_verify(tls: TlsConfig) -> bool | str:
    """The value for ``requests.Session.verify`` that agrees with the context (requests also feeds it to urllib3)."""
    if not tls.verify:
        return False
    return str(tls.ca_bundle) if tls.ca_bundle is not None else True


def _merge_keeping_verify(self: requests.Session, url: Any, proxies: Any, stream: Any, verify: Any,
                          cert: Any) -> dict[str, Any]:
    settings = requests.Session.merge_environment_settings(self, url, proxies, stream, verify, cert)
    settings["verify"] = self.verify
    return settings


def pin_verify(session: requests.Session, verify: bool | str) -> requests.Session:
    """Make the configured TLS trust win over the environment.

    requests merges ``REQUESTS_CA_BUNDLE`` / ``CURL_CA_BUNDLE`` into every request whose own ``verify`` is
    unset or True, *over* the session's: a configured ``ca_bundle`` then no longer replaces the trust store,
    and ``verify: false`` is turned back on. ``trust_env`` stays on for what else it reads (HTTPS_PROXY,
    NO_PROXY, .netrc is irrelevant to NTLM/Bearer auth), only ``verify`` is taken from the session.
    """
    session.verify = verify
    session.merge_environment_settings = types.MethodType(_merge_keeping_verify, session)  # type: ignore[method-assign]
    return session


_warned_unverified: set[str] = set()


def warn_unverified(server: str, logger: logging.Logger) -> None:
    """``verify: false``: one clear warning per server and process instead of urllib3's one per request."""
    warnings.filterwarnings("ignore", category=urllib3.exceptions.InsecureRequestWarning)
    if server not in _warned_unverified:
        _warned_unverified.add(server)
        logger.warning("TLS certificate verification is OFF for %s (connection.tls.verify: false): anyone on the "
                       "network path can impersonate the server and read the credentials", server)


def make_adapter_class(ctx: ssl.SSLContext) -> type[requests.adapters.HTTPAdapter]:
    """An HTTPAdapter subclass bound to ``ctx``. exchangelib instantiates adapters from a class attribute,
    so the binding has to live on a class: we make one class per EwsSource."""

    class SourceTlsAdapter(requests.adapters.HTTPAdapter):
        ssl_context = ctx

        def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
            kwargs["ssl_context"] = self.ssl_context
            super().init_poolmanager(*args, **kwargs)

        def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
            proxy_kwargs["ssl_context"] = self.ssl_context
            return super().proxy_manager_for(proxy, **proxy_kwargs)

    return SourceTlsAdapter
