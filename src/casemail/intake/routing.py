"""Where a recipient's mail goes, decided at ``RCPT``.

A reply address names its case and its side, signed (``addresses``);
``postmaster`` is taken for a person; a bounce address names one of our
outgoing mails. A reply address whose signature holds is still refused
when its case is not in this database — asked once per case: cases are
never deleted, so one seen to exist is remembered, and the next mail for
it is routed on the event loop without a trip to a worker thread.
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict

from sqlalchemy import bindparam, select

from casemail.cases.threading import Route, route_recipient
from casemail.db import models as m
from casemail.errors import UnknownCase
from casemail.intake import rawstore
from casemail.runtime import Runtime

# Case ids remembered, the oldest dropped first beyond this many.
_KNOWN_CASES = 100_000
_CASE_EXISTS = select(m.Case.id).where(m.Case.id == bindparam("id"))


class Router:
    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime
        # Ids of cases seen to exist, oldest first (see ``route``).
        self._known_cases: OrderedDict[int, None] = OrderedDict()

    def route(self, recipient: str) -> Route:
        """Where mail for ``recipient`` goes, its case checked to exist.

        Raises ``AddressError`` for an address that is not ours and
        ``UnknownCase`` for a valid reply address whose case is not in
        this database: the same words either way, so a prober never
        learns which it was.
        """
        route, known = self._routed(recipient)
        if not known:
            assert route.case_id is not None
            if not self.case_exists(route.case_id):
                raise UnknownCase("no such case")
        return route

    def case_exists(self, case_id: int) -> bool:
        """Whether this database holds the case, asked at most once."""
        if case_id in self._known_cases:
            return True
        # Read-only sessions: on SQLite they never queue for the write
        # lock. A plain statement on their connection: loading the whole
        # case would cost more than this check is worth.
        with self.rt.read_sessions() as s:
            if s.connection().execute(
                    _CASE_EXISTS, {"id": case_id}).first() is None:
                return False
        # Cases are never deleted: one seen once exists for good.
        # Bounded, dropping the oldest, so a gateway that lives for years
        # does not keep every id it ever saw. Checks run in several
        # threads: popitem is one step, and two of them racing for the
        # last entry only drop one more.
        if len(self._known_cases) >= _KNOWN_CASES:
            with contextlib.suppress(KeyError):
                self._known_cases.popitem(last=False)
        self._known_cases[case_id] = None
        return True

    def known_route(self, recipient: str) -> Route | None:
        """``route`` when it needs no database: the postmaster, a bounce
        address, a case seen before. None when the case must be looked
        up; raises as ``route`` does for an address that is not ours.

        Cheap enough for the event loop, which so spares most mails a
        trip to a worker thread at RCPT."""
        route, known = self._routed(recipient)
        return route if known else None

    def _routed(self, recipient: str) -> tuple[Route, bool]:
        """The route, and whether it holds without asking the database."""
        if rawstore.for_postmaster(recipient, self.rt.settings.reply_domain):
            return Route(rawstore.POSTMASTER), True
        route = route_recipient(self.rt.signer, recipient)
        return route, (route.kind != "reply"
                       or route.case_id in self._known_cases)
