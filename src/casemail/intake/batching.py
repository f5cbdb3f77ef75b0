"""Group commit: the mails that arrive together are filed together.

Each SMTP or LMTP session hands its mail to ``GroupCommit.file`` and
waits. While one batch is being written (in a worker thread, one
transaction, ``Pipeline.process_batch``), the mails that arrive queue
here; when it has committed, its senders get their answers and the
queue becomes the next batch. One mail alone is written at once, as
before; under load the commit, its sync to disk and the hand-over of
the write lock are paid once a batch instead of once a mail, and mails
are written in the order they finished arriving, so none waits behind
a stream of later ones.

A sender is answered only after the commit that holds its mail: a
batch that fails is answered as failed, mail by mail, and each sender
tries again.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from casemail.intake.pipeline import (
    Filing,
    Outcome,
    Pipeline,
    failed_outcome,
)

log = logging.getLogger(__name__)

# A batch stops growing at this many mails or this many bytes of mail:
# a long transaction holds case locks (PostgreSQL) and the write lock
# (SQLite) from everyone else, and keeps its mails in memory.
MAX_MAILS = 64
MAX_BYTES = 32 * 1024 * 1024


@dataclass
class _Waiting:
    filings: Sequence[Filing]
    size: int
    answer: asyncio.Future[list[Outcome]]


class GroupCommit:
    """Files mails for the listener's sessions, several per transaction.

    Lives on one event loop; only its writing runs in a thread."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self._queue: deque[_Waiting] = deque()
        self._writer: asyncio.Task[None] | None = None

    async def file(self, filings: Sequence[Filing]) -> list[Outcome]:
        """The outcome of each of one mail's ``filings`` (its recipients),
        once the transaction that holds them has committed."""
        answer: asyncio.Future[list[Outcome]] = (
            asyncio.get_running_loop().create_future())
        size = len(filings[0].raw) if filings else 0
        self._queue.append(_Waiting(filings, size, answer))
        if self._writer is None:
            self._writer = asyncio.create_task(self._write_all(),
                                               name="group-commit")
        return await answer

    async def _write_all(self) -> None:
        try:
            while self._queue:
                batch = self._next_batch()
                filings = [f for w in batch for f in w.filings]
                try:
                    outcomes = await asyncio.to_thread(
                        self.pipeline.process_batch, filings)
                except Exception as exc:  # process_batch never raises
                    outcomes = [failed_outcome(exc)] * len(filings)
                at = 0
                for waiting in batch:
                    mine = outcomes[at:at + len(waiting.filings)]
                    at += len(waiting.filings)
                    if not waiting.answer.done():  # its session may be gone
                        waiting.answer.set_result(mine)
                if len(batch) > 1:
                    log.debug("filed %s mails in one transaction",
                              len(batch))
        finally:
            self._writer = None

    def _next_batch(self) -> list[_Waiting]:
        batch = [self._queue.popleft()]
        mails, size = len(batch[0].filings), batch[0].size
        while self._queue:
            nxt = self._queue[0]
            if (mails + len(nxt.filings) > MAX_MAILS
                    or size + nxt.size > MAX_BYTES):
                break
            batch.append(self._queue.popleft())
            mails += len(nxt.filings)
            size += nxt.size
        return batch
