"""STARTTLS from a configured certificate, and SMTP AUTH over it.

AUTH is offered and required only when users are configured *and* a
certificate is: a password never crosses the wire in the clear (RFC 4954
4, RFC 3207 6). Without a certificate the users are ignored, and the
settings loader has already warned about it.
"""

from __future__ import annotations

import hmac
import logging
import ssl
from typing import Any

from aiosmtpd.smtp import AuthResult, LoginPassword

from casemail.config import ListenerSettings
from casemail.errors import ConfigError
from casemail.intake import replies

log = logging.getLogger(__name__)


def server_context(settings: ListenerSettings) -> ssl.SSLContext | None:
    """The TLS context for STARTTLS, or None when no certificate is set."""
    if settings.tls_cert is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    # Mail servers rarely present client certificates; asking for one
    # would fail their handshake (aiosmtpd warns about it too).
    context.verify_mode = ssl.CERT_NONE
    try:
        context.load_cert_chain(settings.tls_cert, settings.tls_key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot load TLS certificate {settings.tls_cert}: "
                          f"{exc}") from exc
    return context


def auth_enabled(settings: ListenerSettings) -> bool:
    return bool(settings.auth_users) and settings.tls_cert is not None


class Authenticator:
    """Checks LOGIN and PLAIN credentials against the configured users.

    XXX: the passwords sit in the settings in clear text; there is no
    hashed form yet, so the configuration file must be readable by the
    casemail user only.
    """

    def __init__(self, users: dict[str, str]) -> None:
        self._users = {name: secret.encode() for name, secret in users.items()}

    def __call__(self, server: Any, session: Any, envelope: Any,
                 mechanism: str, auth_data: Any) -> AuthResult:
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False,
                              message=replies.AUTH_FAILED)
        login = auth_data.login.decode("utf-8", "replace")
        expected = self._users.get(login)
        # Compare even for an unknown user, so timing tells nothing.
        ok = hmac.compare_digest(expected or b"\0" * 32, auth_data.password)
        if expected is None or not ok:
            log.warning("AUTH %s failed for %r", mechanism, login)
            return AuthResult(success=False, handled=False,
                              message=replies.AUTH_FAILED)
        log.info("AUTH %s succeeded for %r", mechanism, login)
        return AuthResult(success=True)
