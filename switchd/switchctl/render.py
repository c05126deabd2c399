"""Replies and events as switchctl prints them: wire-style text, tables, JSON lines.

Pure functions from fields to strings, so script mode, ``--watch`` and the
interactive console print the same way and the tests can read it back. Values are
quoted with the protocol's own :func:`~switchd.cti.codec.quote`, so a printed
``key=value`` can be pasted back into a request.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime

from switchd.cti.client import Response
from switchd.cti.codec import FieldValue, quote

__all__ = [
    "MISSING",
    "error_text",
    "event_text",
    "fields_text",
    "json_text",
    "reply_lines",
    "table_lines",
]

#: What a table shows for a field an item does not have (a null is left off the wire).
MISSING = "-"


def fields_text(fields: Mapping[str, FieldValue], *, skip: Iterable[str] = ()) -> str:
    """``key=value key="two words" …`` in wire quoting, leaving out the keys in ``skip``."""
    left_out = set(skip)
    return " ".join(f"{k}={quote(v)}" for k, v in fields.items()
                    if k not in left_out and v is not None)


def json_text(fields: Mapping[str, FieldValue]) -> str:
    """One JSON object on one line, keys in wire order, non-ASCII kept as is."""
    return json.dumps(dict(fields), ensure_ascii=False, separators=(",", ":"))


def error_text(code: str, msg: str) -> str:
    """An ``ERR`` reply as switchctl prints it on stderr: ``ERR <code> <msg>``; a verb
    that needs a login gets the hint a switchctl user needs (the wire's AUTH is
    switchctl's ``-u``)."""
    text = f"ERR {code} {msg}"
    if code == "not_authenticated":
        text += " (switchctl logs in with -u NAME, or $SWITCHD_USER, and the secret)"
    return text


def _cell(value: FieldValue | None) -> str:
    return MISSING if value is None else quote(value)


def _one_table(items: Sequence[Mapping[str, FieldValue]]) -> list[str]:
    """Aligned columns, one per key in order of first appearance, with a header row."""
    columns: dict[str, None] = {}
    for item in items:
        columns.update(dict.fromkeys(item))
    keys = list(columns)
    rows = [keys] + [[_cell(item.get(k)) for k in keys] for item in items]
    widths = [max(len(row[i]) for row in rows) for i in range(len(keys))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
            for row in rows]


def _vertical(item: Mapping[str, FieldValue]) -> list[str]:
    """One item as ``key  value`` lines, for a row too wide to read across."""
    width = max(len(k) for k in item)
    return [f"{k.ljust(width)}  {_cell(v)}" for k, v in item.items()]


def table_lines(items: Sequence[Mapping[str, FieldValue]], *,
                vertical_over: int | None = None) -> list[str]:
    """The ``ITEM`` lines of a list reply as aligned tables; no lines for an empty list.

    Items with a ``kind`` field (``QUEUE.STATUS``: one queue row, then agent rows)
    start a new table whenever the kind changes, with a blank line between tables,
    so each table has the columns of its own kind instead of a sparse union. With
    ``vertical_over`` (the console), a group of one item with more fields than that
    is shown as ``key  value`` lines instead.
    """
    groups: list[list[Mapping[str, FieldValue]]] = []
    for item in items:
        if groups and groups[-1][0].get("kind") == item.get("kind"):
            groups[-1].append(item)
        else:
            groups.append([item])
    out: list[str] = []
    for group in groups:
        if out:
            out.append("")
        if vertical_over is not None and len(group) == 1 and len(group[0]) > vertical_over:
            out.extend(_vertical(group[0]))
        else:
            out.extend(_one_table(group))
    return out


def reply_lines(reply: Response, *, as_json: bool, vertical_over: int | None = None) -> list[str]:
    """What to print for a successful reply.

    Text: ``OK key=value …`` for an ``OK`` (just ``OK`` when it has no fields), the
    items as :func:`table_lines` for a list. JSON: the ``OK``'s fields as one
    object, or one object per item (the ``END`` count is the number of lines).
    ``vertical_over`` is passed to :func:`table_lines`.
    """
    if reply.items is None:
        if as_json:
            return [json_text(reply.fields)]
        text = fields_text(reply.fields)
        return [f"OK {text}" if text else "OK"]
    if as_json:
        return [json_text(item) for item in reply.items]
    return table_lines(reply.items, vertical_over=vertical_over)


def _clock(value: FieldValue | None) -> str | None:
    """An ISO-8601 UTC time as local ``HH:MM:SS``; None when it is not one."""
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value).astimezone().strftime("%H:%M:%S")
    except ValueError:
        return None


def event_text(fields: Mapping[str, FieldValue], *, compact: bool) -> str:
    """One event on one line.

    Full (``--watch``): ``call.ringing call=… time=… line=ext/201 …``, every field.
    Compact (the console): ``12:25:45 call.ringing call=… line=ext/201 …``, the
    ``time`` shown as a local clock in front.
    """
    name = str(fields.get("event", "?"))
    if not compact:
        rest = fields_text(fields, skip=("event",))
        return f"{name} {rest}".rstrip()
    clock = _clock(fields.get("time"))
    rest = fields_text(fields, skip=("event", "time") if clock else ("event",))
    return " ".join(x for x in (clock, name, rest) if x)
