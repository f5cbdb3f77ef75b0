"""The case lifecycle: its states, the events that move it, and the one
transition table. Pure code: no database, no mail.

    awaiting_merchant  the customer wrote and waits for the merchant
    open               active; either side may write next
    awaiting_customer  the merchant answered and waits for the customer
    closed             resolved; stays searchable

A pair missing from the table is a move that is not allowed; the case
service raises ``InvalidTransition`` for it, and says which move it was.
"""

from __future__ import annotations

from enum import StrEnum

from casemail.errors import InvalidTransition


class State(StrEnum):
    AWAITING_MERCHANT = "awaiting_merchant"
    OPEN = "open"
    AWAITING_CUSTOMER = "awaiting_customer"
    CLOSED = "closed"


class Priority(StrEnum):
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    URGENT = "urgent"


class Event(StrEnum):
    CUSTOMER_MESSAGE = "customer_message"
    MERCHANT_MESSAGE = "merchant_message"
    STAFF_MESSAGE = "staff_message"
    MERCHANT_SET_OPEN = "merchant_set_open"
    MERCHANT_SET_AWAITING_CUSTOMER = "merchant_set_awaiting_customer"
    MERCHANT_SET_AWAITING_MERCHANT = "merchant_set_awaiting_merchant"
    MERCHANT_CLOSE = "merchant_close"
    CUSTOMER_CLOSE = "customer_close"
    CUSTOMER_REOPEN = "customer_reopen"
    AUTO_CLOSE = "auto_close"


S, E = State, Event
_ACTIVE = (S.AWAITING_MERCHANT, S.OPEN, S.AWAITING_CUSTOMER)
_ALL = (*_ACTIVE, S.CLOSED)

TRANSITIONS: dict[tuple[State, Event], State] = {
    # A customer's message always waits for the merchant, and reopens a
    # closed case (PRODUCT: "also to a closed case, which reopens it").
    **{(s, E.CUSTOMER_MESSAGE): S.AWAITING_MERCHANT for s in _ALL},
    # The merchant's answer waits for the customer; answering a closed case
    # reopens it, as the merchant has evidently taken it up again.
    **{(s, E.MERCHANT_MESSAGE): S.AWAITING_CUSTOMER for s in _ALL},
    # Platform staff step in on disputes: the case is active for both sides.
    **{(s, E.STAFF_MESSAGE): S.OPEN for s in _ALL},
    # The merchant's status changes, from any state to any other.
    **{(s, E.MERCHANT_SET_OPEN): S.OPEN for s in _ALL if s != S.OPEN},
    **{(s, E.MERCHANT_SET_AWAITING_CUSTOMER): S.AWAITING_CUSTOMER
       for s in _ALL if s != S.AWAITING_CUSTOMER},
    **{(s, E.MERCHANT_SET_AWAITING_MERCHANT): S.AWAITING_MERCHANT
       for s in _ALL if s != S.AWAITING_MERCHANT},
    **{(s, E.MERCHANT_CLOSE): S.CLOSED for s in _ACTIVE},
    # The customer may close an active case and reopen a closed one; a
    # reopened case waits for the merchant, like a new message would.
    **{(s, E.CUSTOMER_CLOSE): S.CLOSED for s in _ACTIVE},
    (S.CLOSED, E.CUSTOMER_REOPEN): S.AWAITING_MERCHANT,
    # Only a case that waits on the customer closes by itself.
    (S.AWAITING_CUSTOMER, E.AUTO_CLOSE): S.CLOSED,
}

# What a merchant's "set status to X" means as an event.
MERCHANT_STATUS_EVENT: dict[State, Event] = {
    S.OPEN: E.MERCHANT_SET_OPEN,
    S.AWAITING_CUSTOMER: E.MERCHANT_SET_AWAITING_CUSTOMER,
    S.AWAITING_MERCHANT: E.MERCHANT_SET_AWAITING_MERCHANT,
    S.CLOSED: E.MERCHANT_CLOSE,
}

# What a customer's "set status to X" (from the portal) means as an event.
CUSTOMER_STATUS_EVENT: dict[State, Event] = {
    S.CLOSED: E.CUSTOMER_CLOSE,
    S.AWAITING_MERCHANT: E.CUSTOMER_REOPEN,
}


# How a refused move is put to a person.
_ASKED = {
    E.CUSTOMER_MESSAGE: "take a customer's message",
    E.MERCHANT_MESSAGE: "take a merchant's message",
    E.STAFF_MESSAGE: "take a staff message",
    E.MERCHANT_SET_OPEN: "be set to open",
    E.MERCHANT_SET_AWAITING_CUSTOMER: "be set to awaiting customer",
    E.MERCHANT_SET_AWAITING_MERCHANT: "be set to awaiting merchant",
    E.MERCHANT_CLOSE: "be closed",
    E.CUSTOMER_CLOSE: "be closed",
    E.CUSTOMER_REOPEN: "be reopened",
    E.AUTO_CLOSE: "be closed for being idle",
}


def next_state(state: State | str, event: Event) -> State:
    """The state ``event`` moves a case in ``state`` to, or raise."""
    current = State(state)
    try:
        return TRANSITIONS[(current, event)]
    except KeyError:
        raise InvalidTransition(
            f"a case that is {current.value.replace('_', ' ')} cannot "
            f"{_ASKED[event]} ({event.value})") from None


def is_reopening(before: State | str, after: State) -> bool:
    return State(before) is S.CLOSED and after is not S.CLOSED
