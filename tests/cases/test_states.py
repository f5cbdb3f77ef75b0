"""The transition table, checked for every state × every event."""

from __future__ import annotations

import pytest

from casemail.cases.states import (
    CUSTOMER_STATUS_EVENT,
    MERCHANT_STATUS_EVENT,
    TRANSITIONS,
    Event,
    State,
    next_state,
)
from casemail.errors import InvalidTransition

S, E = State, Event
A_M, OPEN, A_C, CLOSED = (S.AWAITING_MERCHANT, S.OPEN, S.AWAITING_CUSTOMER,
                          S.CLOSED)

# The whole table written out by hand from the product description, so a
# change to the code's table must be a change to this one too.
EXPECTED: dict[State, dict[Event, State | None]] = {
    A_M: {E.CUSTOMER_MESSAGE: A_M, E.MERCHANT_MESSAGE: A_C,
          E.STAFF_MESSAGE: OPEN, E.MERCHANT_SET_OPEN: OPEN,
          E.MERCHANT_SET_AWAITING_CUSTOMER: A_C,
          E.MERCHANT_SET_AWAITING_MERCHANT: None, E.MERCHANT_CLOSE: CLOSED,
          E.CUSTOMER_CLOSE: CLOSED, E.CUSTOMER_REOPEN: None,
          E.AUTO_CLOSE: None},
    OPEN: {E.CUSTOMER_MESSAGE: A_M, E.MERCHANT_MESSAGE: A_C,
           E.STAFF_MESSAGE: OPEN, E.MERCHANT_SET_OPEN: None,
           E.MERCHANT_SET_AWAITING_CUSTOMER: A_C,
           E.MERCHANT_SET_AWAITING_MERCHANT: A_M, E.MERCHANT_CLOSE: CLOSED,
           E.CUSTOMER_CLOSE: CLOSED, E.CUSTOMER_REOPEN: None,
           E.AUTO_CLOSE: None},
    A_C: {E.CUSTOMER_MESSAGE: A_M, E.MERCHANT_MESSAGE: A_C,
          E.STAFF_MESSAGE: OPEN, E.MERCHANT_SET_OPEN: OPEN,
          E.MERCHANT_SET_AWAITING_CUSTOMER: None,
          E.MERCHANT_SET_AWAITING_MERCHANT: A_M, E.MERCHANT_CLOSE: CLOSED,
          E.CUSTOMER_CLOSE: CLOSED, E.CUSTOMER_REOPEN: None,
          E.AUTO_CLOSE: CLOSED},
    CLOSED: {E.CUSTOMER_MESSAGE: A_M, E.MERCHANT_MESSAGE: A_C,
             E.STAFF_MESSAGE: OPEN, E.MERCHANT_SET_OPEN: OPEN,
             E.MERCHANT_SET_AWAITING_CUSTOMER: A_C,
             E.MERCHANT_SET_AWAITING_MERCHANT: A_M, E.MERCHANT_CLOSE: None,
             E.CUSTOMER_CLOSE: None, E.CUSTOMER_REOPEN: A_M,
             E.AUTO_CLOSE: None},
}

PAIRS = [(s, e) for s in State for e in Event]


def test_expectation_covers_every_pair() -> None:
    assert {(s, e) for s in EXPECTED for e in EXPECTED[s]} == set(PAIRS)


@pytest.mark.parametrize(("state", "event"), PAIRS,
                         ids=[f"{s.value}-{e.value}" for s, e in PAIRS])
def test_every_state_and_event(state: State, event: Event) -> None:
    expected = EXPECTED[state][event]
    if expected is None:
        with pytest.raises(InvalidTransition, match=event.value):
            next_state(state, event)
    else:
        assert next_state(state, event) is expected


def test_table_holds_nothing_beyond_the_expectation() -> None:
    allowed = {(s, e) for s in EXPECTED for e, t in EXPECTED[s].items() if t}
    assert set(TRANSITIONS) == allowed


def test_status_events_land_on_the_state_they_name() -> None:
    for target, event in MERCHANT_STATUS_EVENT.items():
        for state in State:
            if (state, event) in TRANSITIONS:
                assert TRANSITIONS[(state, event)] is target
    for target, event in CUSTOMER_STATUS_EVENT.items():
        for state in State:
            if (state, event) in TRANSITIONS:
                assert TRANSITIONS[(state, event)] is target


def test_a_refused_move_is_put_in_words() -> None:
    with pytest.raises(InvalidTransition) as refused:
        next_state(CLOSED, E.MERCHANT_CLOSE)
    assert str(refused.value).startswith("a case that is closed cannot be "
                                         "closed")
