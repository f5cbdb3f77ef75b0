"""Rows written at once, past the session's unit of work.

Every mail writes the same few rows: the raw mail, the message, its
timeline entries, the notification in the outbox. Added to the session,
each waits for a flush, and the flush costs several times the INSERT it
sends: it sorts the mappers involved and walks each of their
relationships, every time. ``insert`` sends the INSERT straight through
the session's connection, inside its transaction, and gives back the
object as the session would after loading it: persistent, with its id,
every column set. Changing it afterwards is an ordinary UPDATE at the
next flush. ``update_row`` is the same for a few columns of a row the
session already holds; ``write_row`` writes a row nothing reads back in
the same transaction (a timeline entry), with no object at all.

The price: a row written this way is not in the session's pending
objects, so a row it refers to must already be in the database (flushed
or written the same way), and its relationships are the caller's to set
(``set_committed_value``) where anything reads them; otherwise they load
on first use.
"""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import Insert, Table, Update, bindparam, insert, update
from sqlalchemy.orm import Session, make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value

from casemail.db.models import Base

T = TypeVar("T", bound=Base)

_STATEMENTS: dict[Table, Insert] = {}
_PLAIN: dict[Table, Insert] = {}
_UPDATES: dict[tuple[Table, tuple[str, ...]], Update] = {}


def insert_row(s: Session, model: type[T], **values: Any) -> T:
    """Write one row of ``model`` now; the persistent object for it."""
    table: Table = model.__table__  # type: ignore[assignment]
    values = _complete(table, values)
    statement = _STATEMENTS.get(table)
    if statement is None:  # built once: SQLAlchemy then reuses its compiled form
        statement = _STATEMENTS[table] = insert(table).returning(table.c.id)
    row_id = s.connection().execute(statement, values).scalar_one()
    obj = model(**values)
    obj.id = row_id  # type: ignore[attr-defined]
    make_transient_to_detached(obj)
    s.add(obj)
    return obj


def write_row(s: Session, model: type[Base], **values: Any) -> None:
    """Write one row of ``model`` now, and keep no object of it: about
    a third of what ``insert_row`` costs goes to making that object."""
    table: Table = model.__table__  # type: ignore[assignment]
    statement = _PLAIN.get(table)
    if statement is None:
        statement = _PLAIN[table] = insert(table)
    s.connection().execute(statement, _complete(table, values))


def update_row(s: Session, obj: Base, **values: Any) -> None:
    """Set ``values`` on ``obj``'s row now, and on ``obj`` as loaded.

    For columns nothing else in this transaction changes: a change of
    the same column still pending in the session would be written over
    at the next flush."""
    table: Table = type(obj).__table__  # type: ignore[assignment]
    key = (table, tuple(sorted(values)))
    statement = _UPDATES.get(key)
    if statement is None:
        statement = _UPDATES[key] = (
            update(table).where(table.c.id == bindparam("_row_id"))
            .values({name: bindparam(name) for name in key[1]}))
    s.connection().execute(
        statement, {"_row_id": obj.id, **values})  # type: ignore[attr-defined]
    for name, value in values.items():
        set_committed_value(obj, name, value)


def _complete(table: Table, values: dict[str, Any]) -> dict[str, Any]:
    """Every column but the id: a column left out would otherwise be
    loaded back from the database the first time it is read."""
    out = dict(values)
    for column in table.columns:
        if column.key in out or column.primary_key:
            continue
        default = column.default
        if default is None:
            out[column.key] = None
        elif default.is_scalar:  # type: ignore[attr-defined]
            out[column.key] = default.arg  # type: ignore[attr-defined]
        else:  # list, dict: a fresh one, as the ORM would make
            out[column.key] = default.arg(None)  # type: ignore[attr-defined]
    return out
