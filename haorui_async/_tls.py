"""TLS settings shared by both backends: certificates are always verified."""

from __future__ import annotations

import ssl

import certifi

from ._exceptions import ConfigurationError

__all__ = ["verifying_context"]


def verifying_context(ssl_context: ssl.SSLContext | None = None) -> ssl.SSLContext:
    """`ssl_context` if it verifies certificates and host names, else raise.

    Without one, a context over certifi's CA bundle, the same authorities httpx trusts.

    Raises:
        ConfigurationError: the context does not verify certificates or host names.
    """
    if ssl_context is None:
        return ssl.create_default_context(cafile=certifi.where())
    if ssl_context.verify_mode != ssl.CERT_REQUIRED or not ssl_context.check_hostname:
        raise ConfigurationError(
            "ssl_context: must verify certificates and host names "
            "(verify_mode=CERT_REQUIRED, check_hostname=True)"
        )
    return ssl_context
