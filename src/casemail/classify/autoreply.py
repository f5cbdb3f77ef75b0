"""Out-of-office and auto-reply subjects, in the languages customers use.

Many auto-responders (and Outlook rules) set no header at all, so the
subject is the only sign.  A pattern must match at the start of the
subject, before any reply prefix, and end in a separator, so that a
person asking "Out of office hours support?" is not taken for a robot.
"""

from __future__ import annotations

import re

from casemail.classify.rule import Inbound, Rule, register
from casemail.classify.verdict import AUTO_REPLY

RULES: list[Rule] = []

# Words that open an automatic subject, per language; each is followed by
# ":", "-", "(", "[" or the end of the subject.
_OPENERS = (
    # English
    r"auto(matic|mated)?[- ]?(reply|response|answer)",
    r"auto[- ]?responder", r"autoreply", r"autoresponse",
    r"out of (the )?office( reply| notice| notification| autoreply"
    r"| auto reply| message)?",
    r"(on )?vacation( reply| notice| message| auto reply)?",
    r"away from (the|my) (office|desk)", r"i am (currently )?out of"
    r" (the )?office", r"i'm (currently )?out of (the )?office",
    r"on (annual|parental|maternity|sick) leave", r"on holiday",
    r"absence notice", r"away message",
    # German
    r"automatische antwort", r"abwesenheit(snotiz|smeldung|snachricht)?",
    r"(ich bin )?nicht im b(ü|ue)ro", r"urlaubsabwesenheit",
    # French
    r"r(é|e)ponse automatique", r"absent(e)? du bureau", r"absence",
    r"message d'absence",
    # Spanish, Portuguese, Catalan
    r"respuesta autom(á|a)tica", r"fuera de la oficina",
    r"(estoy )?fuera de oficina", r"ausencia", r"ausente",
    r"resposta autom(á|a)tica", r"fora do escrit(ó|o)rio",
    r"resposta autom(à|a)tica",
    # Italian
    r"risposta automatica", r"fuori (sede|ufficio)", r"assenza",
    # Dutch
    r"automatisch antwoord", r"afwezig(heid)?(smelding|sbericht)?",
    r"niet (aanwezig|op kantoor)",
    # Nordic
    r"autosvar", r"automatisk svar", r"fr(å|a)nvaro(meddelande)?",
    r"frav(æ|ae)r(smelding)?", r"frav(æ|ae)rsbesked",
    r"automaattinen vastaus", r"poissa( toimistolta)?",
    # Central and eastern European
    r"automatyczna odpowied(ź|z)", r"poza biurem", r"nieobecno(ść|sc)",
    r"automatick(á|a) odpov(ě|e)(ď|d)", r"nep(ř|r)(í|i)tomnost",
    r"automatick(á|a) odpove(ď|d)", r"automatikus v(á|a)lasz",
    r"h(á|a)zon k(í|i)v(ü|u)l", r"r(ă|a)spuns automat",
    r"automatski odgovor", r"samodejni odgovor",
    r"автоответ(чик)?", r"автоматический ответ", r"автоматична відповідь",
    r"отсутствую", r"нет в офисе", r"αυτόματη απάντηση", r"εκτός γραφείου",
    # Turkish
    r"otomatik (yan(ı|i)t|cevap)", r"ofis d(ı|i)(ş|s)(ı|i)nda",
    # Asian languages: no word boundary, so matched as prefixes below
)
_CJK = (
    "自動応答", "自動返信", "不在通知", "不在のお知らせ", "外出中",
    "自动回复", "自動回覆", "自動回復",
    "자동 응답", "자동응답", "부재중", "자동 회신",
    "ตอบกลับอัตโนมัติ", "trả lời tự động", "balasan otomatis",
)
# No reply or forward prefix may come first: "Re: Automatic reply: …" is
# a person answering (or forwarding) an auto-reply, and responders put
# their words in front of the subject they answer, never behind "Re:".
_PREFIX = r"^\s*"
_WORDS = "(" + "|".join(_OPENERS) + ")"
_OPENER = re.compile(
    _PREFIX + r"([\[(]" + _WORDS + r"[\])]|" + _WORDS
    + r"\s*([:\-–—(\[]|$))", re.I)
_CJK_OPENER = re.compile(
    _PREFIX + r"[\[(【]?(" + "|".join(map(re.escape, _CJK)) + ")", re.I)


def is_auto_reply_subject(subject: str) -> bool:
    return bool(_OPENER.match(subject) or _CJK_OPENER.match(subject))


@register(RULES, "out-of-office-subject",
          "Subject opening with an automatic-reply phrase", AUTO_REPLY)
def out_of_office_subject(mail: Inbound) -> bool:
    return is_auto_reply_subject(mail.subject)
