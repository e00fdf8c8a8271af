"""HTTPS for the DMS gateway: the server's TLS context from ``[api] tls_cert``/``tls_key``.

TLS is built in rather than left to a reverse proxy: the HTTP library (aiohttp on asyncio)
serves it directly, the gateway's own bounds (``gateway.guard``) then see the real client
address, and one process is one thing to run. ``tls_client_ca`` (optional) makes the gateway
require a client certificate issued by that CA (PEM, one or more certificates): a DMS without
one is refused in the TLS handshake, before any HTTP. TLS 1.2 is the oldest version offered.
"""

from __future__ import annotations

import ssl

from edoc_axis.config.settings import ApiSettings
from edoc_axis.errors import ConfigError


def server_context(api: ApiSettings) -> ssl.SSLContext | None:
    """The TLS context the gateway serves with, or None for plain HTTP (no ``tls_cert``);
    raises ConfigError naming the key whose file cannot be used."""
    if api.tls_cert is None and api.tls_key is None:
        if api.tls_client_ca is not None:
            raise ConfigError("api.tls_client_ca needs api.tls_cert and api.tls_key",
                              element="api.tls_client_ca")
        return None
    if api.tls_cert is None or api.tls_key is None:
        missing = "api.tls_key" if api.tls_cert is not None else "api.tls_cert"
        raise ConfigError("api.tls_cert and api.tls_key go together", element=missing)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(api.tls_cert, api.tls_key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot use the gateway's TLS certificate {api.tls_cert} with key "
                          f"{api.tls_key}: {_reason(exc)}", element="api.tls_cert") from exc
    if api.tls_client_ca is not None:
        context.verify_mode = ssl.CERT_REQUIRED
        try:
            context.load_verify_locations(cafile=api.tls_client_ca)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"cannot read the DMS client CA {api.tls_client_ca}: "
                              f"{_reason(exc)}", element="api.tls_client_ca") from exc
    return context


def _reason(exc: OSError) -> str:
    return str(exc.strerror or exc)
