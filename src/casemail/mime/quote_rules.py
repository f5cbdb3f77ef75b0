"""The lines that start quoted history or a signature, client by client.

Each rule looks at one line (and the few after it) and says whether the
history starts there. They are ordered by how sure we are.
"""

from __future__ import annotations

import re

# "On <date>, <person> wrote:" as Gmail, Apple Mail, Thunderbird and
# Yahoo write it, in the languages our customers write in. The colon may
# be missing on phones; the line may be wrapped (handled by the caller).
_WROTE = re.compile(
    r"(wrote|writes|said|schrieb|schreef|a écrit|a ecrit|escribió"
    r"|escribio|escreveu|ha scritto|scrisse|skrev|kirjoitti|napisał"
    r"|napisal|pisze|написал|написала|написал\(а\)|napsal|írta|yazdı"
    r"|έγραψε|kirjutas|rašė|rakstīja|je napisal|napisao|a scris"
    r"|skrifaði|написа|wrote\s+----|schreef\s+[^:]*)\s*(\(\w+\))?\s*:?"
    r"\s*(-+)?\s*$",
    re.I)
_WROTE_START = re.compile(
    r"^\s*(-{2,}\s*)?(on|am|le|el|il|op|em|den|dne|w dniu|в|el día|"
    r"\d{1,4}[-./]\d{1,2}|\d{1,2}\.? ?\w+\.? \d{4}|\w+ \d{1,2},? \d{4}"
    r"|\d{4}[-/]\d{2}[-/]\d{2})\b",
    re.I)
_WROTE_ANYWHERE = re.compile(
    r"\b(wrote|schrieb|schreef|a écrit|escribió|escreveu|ha scritto"
    r"|skrev|napisał|написал)\b", re.I)
# A line that is only "<person> <address> wrote:".
_SOMEONE_WROTE = re.compile(r"<[^<>@\s]+@[^<>\s]+>\s*(\w+\s*)?:$")

# Outlook's header block, in the writer's language (From/Von/De/…).
_FROM = re.compile(
    r"^\s*[*_]*(from|von|de|da|van|od|от|fra|från|frá|lähettäjä|feladó"
    r"|kimden|avsändare|afzender|mittente|remitente|expéditeur|odesílatel"
    r"|nadawca|відправник|差出人|发件人|寄件者|보낸 사람)\s*[*_]*\s*:",
    re.I)
_HEADER = re.compile(
    r"^\s*[*_]*(sent|date|to|cc|subject|gesendet|datum|an|betreff|envoyé"
    r"|date d'envoi|à|objet|enviado|fecha|para|asunto|inviato|data|oggetto"
    r"|verzonden|aan|onderwerp|wysłano|temat|do|отправлено|кому|тема"
    r"|sendt|til|emne|skickat|ämne|lähetetty|vastaanottaja|aihe"
    r"|odesláno|komu|předmět|gönderildi|konu|reply-to)\s*[*_]*\s*:",
    re.I)

# Separators clients put above the quoted mail.
_SEPARATOR = re.compile(
    r"^\s*(-{2,}\s*(original message|original nachricht|ursprüngliche"
    r" nachricht|message d'origine|mensaje original|messaggio originale"
    r"|oorspronkelijk bericht|oryginalna wiadomość|исходное сообщение"
    r"|opprinnelig melding|ursprungligt meddelande|alkuperäinen viesti"
    r"|forwarded message|weitergeleitete nachricht|message transféré"
    r"|mensaje reenviado)\s*-{2,}"
    r"|_{10,}|-{20,}|begin forwarded message:|anfang der weitergeleiteten"
    r" nachricht:|début du message réexpédié :)\s*$",
    re.I)

# Phone and app signatures ("Sent from my iPhone" in many languages).
_SENT_FROM = re.compile(
    r"^\s*(sent from (my |mail |yahoo |outlook |samsung )?|sent via |"
    r"get outlook for |envoyé de mon |envoyé depuis |von meinem .* gesendet"
    r"|gesendet von |enviado desde mi |enviado do meu |enviado de mi "
    r"|inviato da(l mio)? |verzonden (vanaf|met) (mijn )?|wysłane z "
    r"|отправлено с |sendt fra min |skickat från min |lähetetty "
    r"|odesláno z |iphone'umdan gönderildi|sent with )",
    re.I)
_SIG_DASHES = re.compile(r"^(-- ?|--|__)$")


# Markers are looked for in this many lines from the start: every line
# costs a dozen regular expressions, and a mail of a million short lines
# must not hold the listener for minutes. New text longer than this is
# not a reply a person typed above a quote.
SCAN_LINES = 2000


def first_marker(lines: list[str], start: int = 0) -> int | None:
    """Index of the first line of quoted history or signature at or after
    ``start``, or None."""
    for i in range(start, min(len(lines), start + SCAN_LINES)):
        if _starts_history(lines, i, lines[i]):
            return i
    return _trailing_quote(lines, start)


def _starts_history(lines: list[str], i: int, line: str) -> bool:
    stripped = line.strip()
    if not stripped:
        return False
    if _SIG_DASHES.match(stripped) or _SEPARATOR.match(stripped):
        return True
    if _is_app_signature(stripped):
        return True
    if _is_wrote_line(lines, i):
        return True
    return _FROM.match(stripped) is not None and _header_block(lines, i)


def _is_app_signature(line: str) -> bool:
    # "Sent from my desk, which is easier." is a sentence, not a signature.
    return bool(_SENT_FROM.match(line)) and len(line) < 80 \
        and ", " not in line and not line.endswith(".")


def _is_wrote_line(lines: list[str], i: int) -> bool:
    line = lines[i].strip()
    if line.startswith(">"):
        return False
    if _wrote_ends(line, lines, i):
        return True
    # Gmail wraps a long "On … wrote:" line over two (or three) lines.
    joined = line
    for nxt in lines[i + 1:i + 3]:
        if not nxt.strip():
            return False
        joined = f"{joined} {nxt.strip()}"
        if _wrote_ends(joined, lines, i) and _WROTE_START.match(line):
            return True
    return False


def _wrote_ends(text: str, lines: list[str], i: int) -> bool:
    if len(text) > 300:
        return False
    if _SOMEONE_WROTE.search(text) and "@" in text:
        return True
    dated = bool(_WROTE_START.match(text))
    if _WROTE.search(text) or _WROTE_ANYWHERE.search(text) \
            and text.rstrip().endswith(":"):
        return dated or "@" in text \
            or text.rstrip().endswith(":") and _quoted_follows(lines, i)
    # "2017-02-05 13:29 GMT+02:00 Jane <jane@example.org>:" with no verb
    # at all (Gmail in some locales), or without the colon above quotes.
    return dated and "@" in text and (
        text.rstrip().endswith(">:") or _quoted_follows(lines, i))


def _quoted_follows(lines: list[str], i: int) -> bool:
    for line in lines[i + 1:i + 4]:
        if line.strip():
            return _is_quote(line)
    return False


def _header_block(lines: list[str], i: int) -> bool:
    """A From: line followed by at least one more Outlook header line."""
    seen = 0
    for line in lines[i + 1:i + 8]:
        if _HEADER.match(line.strip()):
            seen += 1
        if seen >= 1:
            return True
    return False


def end_of_top_block(lines: list[str], start: int) -> int:
    """Where the quoted block or header block opened at ``start`` ends:
    the attribution or header lines, then quoted lines and blanks."""
    i = start + 1
    # A forward's header block runs to the first blank line.
    while i < len(lines) and lines[i].strip() \
            and not _is_quote(lines[i]):
        i += 1
    while i < len(lines) and (not lines[i].strip() or _is_quote(lines[i])):
        i += 1
    return i


def _is_quote(line: str) -> bool:
    return line.lstrip().startswith((">", "|"))


def _trailing_quote(lines: list[str], begin: int = 0) -> int | None:
    """Start of a block of '>' lines that runs to the end (blank lines and
    a signature aside); inline answers between quotes are kept whole."""
    start = None
    for i in range(begin, len(lines)):
        stripped = lines[i].strip()
        if stripped.startswith(">"):
            if start is None:
                start = i
        elif stripped and start is not None:
            return None if not _SIG_DASHES.match(stripped) else start
    return start
