"""Out-of-office subjects in the languages customers write in."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from casemail.classify import Verdict
from casemail.classify.autoreply import is_auto_reply_subject

VerdictOf = Callable[..., Verdict]


@pytest.mark.parametrize("subject", [
    "Out of Office: Your case 4471",
    "Out of office",
    "Automatic reply: [Case 4471] The merchant answered",
    "Auto-Reply: Re: licence key",
    "AutoReply: order 99",
    "[Out of office] back on the 3rd",
    "On vacation: back in August",
    "Abwesenheitsnotiz: Ihr Fall",
    "Automatische Antwort: Bestellung 4471",
    "Réponse automatique : votre demande",
    "Absent du bureau: retour le 12",
    "Respuesta automática: su caso",
    "Fuera de la oficina: pedido",
    "Resposta automática: pedido 12",
    "Risposta automatica: ordine",
    "Automatisch antwoord: uw bestelling",
    "Afwezigheidsmelding",
    "Autosvar: Ärende 12",
    "Automatisk svar: sag 12",
    "Automaattinen vastaus: tilaus",
    "Automatyczna odpowiedź: zamówienie",
    "Automatická odpověď: objednávka",
    "Automatikus válasz: rendelés",
    "Răspuns automat: comanda",
    "Автоответ: заказ 4471",
    "Автоматический ответ: заказ",
    "Αυτόματη απάντηση: παραγγελία",
    "Otomatik yanıt: sipariş",
    "自動応答: ご注文について",
    "自动回复：您的订单",
    "자동 응답: 주문",
])
def test_auto_reply_subjects(subject: str) -> None:
    assert is_auto_reply_subject(subject)


@pytest.mark.parametrize("subject", [
    "Out of office hours support?",
    "Is there an automatic reply when I open a case?",
    "Re: Your licence key for Lumen Photo Pro",
    "Re: Auto Response - refund",
    "Absences of keys in my account",
    "Vacation rental software licence",
    "外出先でダウンロードできません",
    "",
])
def test_subjects_people_write(subject: str) -> None:
    assert not is_auto_reply_subject(subject)


def test_the_subject_rule_on_a_whole_mail(verdict_of: VerdictOf) -> None:
    verdict = verdict_of("human-reply.eml",
                         subject="Automatic reply: Your licence key")
    assert (verdict.kind, verdict.rules) == ("auto-reply",
                                             ["out-of-office-subject"])
