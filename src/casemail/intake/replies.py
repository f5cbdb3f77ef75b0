"""SMTP/LMTP reply texts, and the one mapping from errors to replies.

Every answer carries an enhanced status code (RFC 3463) and a reason a
person can act on. No exception reaches aiosmtpd unmapped: its default
``500 Error: (SomeClass)`` makes the sending server bounce the mail and
tells the world what broke inside.
"""

from __future__ import annotations

import logging

from sqlalchemy.exc import DBAPIError, OperationalError, TimeoutError

from casemail.errors import AddressError, CasemailError, IntakeError, UnknownCase

log = logging.getLogger(__name__)

# Commands that went well. RFC 2034 3: once ENHANCEDSTATUSCODES is
# advertised, every reply but the greeting and the answer to EHLO/HELO
# carries a code, the positive ones too.
SENDER_OK = "250 2.1.0 Sender ok"
OK = "250 2.0.0 OK"
BYE = "221 2.0.0 Bye"
# RFC 5321 3.5.3: 252 when we cannot say. Unknown reply addresses are
# refused at RCPT, so that is where a sender learns the truth.
CANNOT_VERIFY = ("252 2.5.0 Cannot verify addresses; send the mail and RCPT "
                 "will tell")

# Senders
SENDER_NOT_UTF8 = ("501 5.1.7 The sender address is not valid UTF-8; send "
                   "it in ASCII, or in UTF-8 with SMTPUTF8")
SENDER_NEEDS_SMTPUTF8 = ("553 5.6.7 The sender address is not ASCII; add "
                         "the SMTPUTF8 parameter to MAIL FROM")
SENDER_LOCAL_TOO_LONG = ("553 5.1.7 The local part of the sender address is "
                         "longer than 64 bytes")
SENDER_TOO_LONG = ("553 5.1.7 The sender address is longer than 254 "
                   "bytes")
SENDER_CONTROL = ("553 5.1.7 The sender address contains a control "
                  "character; send it as <name@domain>")
SENDER_NO_DOMAIN = ("553 5.1.7 The sender address has no domain; use "
                    "<name@domain>, or <> for a bounce")

# Recipients
NO_SUCH_CASE = "550 5.1.1 No such case: this reply address is not valid"
RCPT_OK = "250 2.1.5 Recipient ok"
TOO_MANY_RECIPIENTS = "452 4.5.3 Too many recipients for one message"
RELAY_DENIED = "550 5.7.1 This server only takes mail for its reply domain"
NO_MAIL_FROM = "503 5.5.1 Send MAIL FROM first"
TOO_MANY_INVALID = ("421 4.7.0 Too many invalid recipients, closing the "
                    "connection")

# Data
ACCEPTED = "250 2.0.0 Message filed"
HELD = "250 2.0.0 Message kept for review"
EMPTY = "250 2.0.0 Empty message kept; the case is unchanged"
RECORDED = "250 2.0.0 Automated message recorded"
DUPLICATE = "250 2.0.0 Message already filed"
QUARANTINED = "250 2.0.0 Message kept; it will be processed later"
FOR_POSTMASTER = "250 2.0.0 Message kept for the postmaster"
NO_THREAD = ("550 5.1.1 This message belongs to no case: reply to a mail "
             "from the case instead")
TOO_BIG = "552 5.3.4 Message is larger than this server accepts"
TRY_LATER = "451 4.3.0 Temporary problem storing the message, try again later"
SHUTTING_DOWN = "421 4.3.2 Service shutting down, try again later"

# Limits; ``{limit}`` is filled from the listener settings.
SIZE_EXCEEDED = ("552 5.3.4 Message size exceeds the {limit} bytes this "
                 "server accepts")
DATA_TOO_BIG = ("552 5.3.4 Message is larger than the {limit} bytes this "
                "server accepts")
LINE_TOO_LONG = ("554 5.6.0 A line of the message is longer than {limit} "
                 "bytes; send it with a transfer encoding")
HEADER_TOO_BIG = ("552 5.3.4 The header section is larger than the {limit} "
                  "bytes this server accepts")
COMMAND_TOO_LONG = "500 5.5.2 Command line too long"
TOO_MANY_CONNECTIONS = ("421 4.3.2 Too many connections to this server, "
                        "try again later")
TOO_MANY_FROM_CLIENT = ("421 4.7.0 Too many connections from your address, "
                        "try again later")
IDLE_TIMEOUT = "421 4.4.2 Nothing heard for too long, closing the connection"

# Security
TLS_REQUIRED = "530 5.7.0 Send STARTTLS first"
TLS_FAILED = "554 5.7.0 Command refused: the TLS handshake failed"
AUTH_REQUIRED = "530 5.7.0 Authentication required"
AUTH_FAILED = "535 5.7.8 Authentication credentials invalid"

# aiosmtpd answers some things itself, in words meant for developers and
# without enhanced codes. Its replies pass through ``translate``; the key is
# the start of its text. Order matters: the first match wins.
_THEIRS = [
    ("552 Error: message size exceeds", SIZE_EXCEEDED),
    ("552 Error: Too much mail data", DATA_TOO_BIG),
    ("500 Line too long", LINE_TOO_LONG),
    ("500 Command line too long", COMMAND_TOO_LONG),
    ("500 Error: bad syntax", "500 5.5.2 Syntax error: no command given"),
    ("500 Error: command", "500 5.5.1 {reason}"),
    ("500 Error: strict ASCII", "500 5.6.7 Only ASCII is accepted here"),
    ("503 Error: need MAIL", NO_MAIL_FROM),
    ("503 Error: need RCPT", "503 5.5.1 Send RCPT TO first"),
    ("503 Error: nested MAIL", "503 5.5.1 Sender already given; send RSET"),
    ("503 Error: send", "503 5.5.1 Say hello first (EHLO, or LHLO for LMTP)"),
    ("503 Already authenticated", "503 5.5.1 Already authenticated"),
    ("554 Command refused due to lack", TLS_FAILED),
    ("530 Must issue a STARTTLS", TLS_REQUIRED),
    ("454 TLS not available", "454 4.7.0 TLS not available"),
    # Its fallback when an error escapes every handler: never "500", which
    # makes the sending server bounce the mail, and never the class name.
    ("500 Error: (", TRY_LATER),
    ("500 Error: Cannot describe", TRY_LATER),
]

# aiosmtpd's positive replies, which carry no enhanced code. Those not
# listed are the greeting, the answer to EHLO/HELO (RFC 2034 3 leaves them
# bare) and the intermediate 334 and 354 (RFC 3463 has no class 3).
_THEIRS_EXACT = {"250 OK": OK, "221 Bye": BYE}
_THEIRS_POSITIVE = [
    ("252 Cannot VRFY", CANNOT_VERIFY),
    ("220 Ready to start TLS", "220 2.0.0 Ready to start TLS"),
    ("250 Syntax: ", "250 2.0.0 {text}"),
    ("250 Supported commands: ", "250 2.0.0 {text}"),
]

# Generic enhanced codes (RFC 3463 3.5, 3.7) for replies aiosmtpd words
# without one, by reply code.
_GENERIC = {
    "421": "4.3.2", "450": "4.2.0", "451": "4.3.0", "452": "4.3.1",
    "454": "4.7.0", "500": "5.5.2", "501": "5.5.4", "502": "5.5.1",
    "503": "5.5.1", "504": "5.5.4", "530": "5.7.0", "550": "5.0.0",
    "552": "5.3.4", "553": "5.1.3", "554": "5.0.0", "555": "5.5.4",
}


def translate(text: str, *, sizes: dict[str, int]) -> str:
    """Our wording of an error reply aiosmtpd produced itself.

    ``sizes`` gives the ``{limit}`` of the size and line texts:
    ``message`` and ``line`` in bytes. Replies that already carry an
    enhanced code pass unchanged, and so do the greeting and the lines
    of the answer to EHLO.
    """
    code = text[:3]
    if not code.isdigit():
        return text
    if code < "400":
        return _positive(text)
    if _has_status(text):
        status, _, reason = text[4:].partition(" ")
        if not reason.startswith("Error: "):
            return text
        return f"{code} {status} {_capital(reason[7:])}"
    reason = _capital(text[4:].removeprefix("Error: ").strip())
    for theirs, ours in _THEIRS:
        if text.startswith(theirs):
            limit = sizes["line" if ours is LINE_TOO_LONG else "message"]
            return ours.format(limit=limit, reason=reason)
    status = _GENERIC.get(code, f"{code[0]}.0.0")
    return f"{code} {status} {reason}"


def _positive(text: str) -> str:
    if text in _THEIRS_EXACT:
        return _THEIRS_EXACT[text]
    for theirs, ours in _THEIRS_POSITIVE:
        if text.startswith(theirs):
            return ours.format(text=text[4:])
    return text


def _has_status(text: str) -> bool:
    # "250 2.1.5 Ok": a class digit, then two dotted numbers (RFC 3463 2).
    parts = text[4:].split(" ", 1)[0].split(".")
    return len(parts) == 3 and all(p.isdigit() for p in parts) \
        and parts[0] == text[0]


def for_error(error: BaseException, *, where: str) -> str:
    """The reply for ``error`` raised while handling ``where`` (RCPT, DATA).

    Anything we do not know is temporary: the sending server keeps the mail
    and tries again, and nothing is lost while we fix the cause.
    """
    if isinstance(error, IntakeError):
        return f"{error.code} {error.status} {_one_line(error.reason)}"
    if isinstance(error, AddressError | UnknownCase):
        return NO_SUCH_CASE
    if isinstance(error, OperationalError | TimeoutError | DBAPIError):
        log.warning("%s: database unavailable: %s", where,
                    type(error).__name__)
        return TRY_LATER
    if isinstance(error, CasemailError):
        log.error("%s: unmapped casemail error %s", where, type(error).__name__)
        return TRY_LATER
    log.error("%s: unexpected %s", where, type(error).__name__,
              exc_info=error)
    return TRY_LATER


def _one_line(text: str) -> str:
    return _capital(" ".join(text.split())[:400])


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]
