"""The recording verbs: ``REC.QUERY`` and ``REC.KEEP`` (the index), ``CALL.RECORD`` (a
live call's recording).

They act only through :class:`~switchd.control.Control` (``query_recordings``,
``keep_recording``, ``record``), never on the store or the recorder directly (the
CTI room imports no store: tests/test_layering.py).

Roles: the index is for staff (supervisor, crm, admin), like ``CDR.QUERY``.
``CALL.RECORD`` is for every role, because the agent on a call is the one who hears
the customer start reading a card number and must pause the recording for compliance
(PCI DSS); an agent may act only on a call its own extension is in, staff on any call.
"""

from __future__ import annotations

import json
from typing import Any

from switchd.control import Control
from switchd.core.engine import CoreError
from switchd.cti.codec import Request
from switchd.cti.server import Reply, Session
from switchd.cti.verbs import (
    ALL_ROLES,
    STAFF,
    VERBS,
    Verb,
    arg,
    bool_arg,
    calls_on,
    core_error,
    int_arg,
    only,
)
from switchd.exceptions import ProtocolError
from switchd.recorder.model import RecordAction, RecordStatus

__all__ = ["REC_VERBS", "RecVerbs", "recording_item"]

REC_VERBS: tuple[Verb, ...] = (
    Verb("REC.QUERY", STAFF,
         "REC.QUERY [call=] [caller=] [callee=] [agent=] [queue=] [since=] [until=] [status=] "
         "[limit=]",
         "search call recordings, newest first (ITEM lines with status and file)", "rec_query"),
    Verb("REC.KEEP", STAFF, "REC.KEEP id=<recording> [keep=true|false]",
         "mark a recording kept (retention never deletes it) or not", "rec_keep"),
    Verb("CALL.RECORD", ALL_ROLES, "CALL.RECORD call=<id> action=start|stop|pause|resume",
         "start, stop, pause (for compliance: silence, keys hidden) or resume a call's "
         "recording (an agent: calls on its own extension)", "call_record"),
)

#: ITEM fields in wire order; ``call`` is the ``call_id`` column.
_ITEM_FIELDS: tuple[tuple[str, str], ...] = (
    ("id", "id"), ("call", "call_id"), ("status", "status"), ("file", "file"),
    ("start", "start"), ("end", "end"), ("duration_s", "duration_s"), ("size", "size"),
    ("caller", "caller"), ("callee", "callee"), ("agent", "agent"), ("agents", "agents"),
    ("queue", "queue"),
    ("direction", "direction"), ("mode", "mode"), ("channels", "channels"),
    ("format", "format"), ("keep", "keep"), ("sha256", "sha256"), ("error", "error"),
    ("marks", "marks"),
)

_STATUSES = tuple(s.value for s in RecordStatus)
_ACTIONS = tuple(a.value for a in RecordAction)


def recording_item(row: dict[str, Any]) -> dict[str, Any]:
    """One index row (``file`` absolute) as the fields of its ITEM/OK line: the columns
    renamed for the wire (``call``), ``keep`` as a boolean, ``marks`` as JSON text (a list
    of ``{at, offset_s, kind, detail}``); null columns are left out by the codec."""
    out: dict[str, Any] = {}
    for wire, column in _ITEM_FIELDS:
        value = row.get(column)
        if column == "keep" and value is not None:
            value = bool(value)
        elif column == "marks" and value is not None and not isinstance(value, str):
            value = json.dumps(value, separators=(",", ":"))
        out[wire] = value
    return out


class RecVerbs:
    """Handlers of :data:`REC_VERBS` (methods named after each verb's ``handler``)."""

    def __init__(self, control: Control) -> None:
        self.control = control

    async def rec_query(self, session: Session, req: Request) -> Reply:
        """REC.QUERY: one ITEM per recording matching every filter, newest first."""
        keys = ("call", "caller", "callee", "agent", "queue", "since", "until", "status")
        only(req, *keys, "limit")
        limit = int_arg(req, "limit", 1, 10_000) or 100
        status = req.args.get("status")
        if status is not None:
            status = status.lower()
            if status not in _STATUSES:
                raise ProtocolError("bad_arg", f"status={req.args['status']!r}: use "
                                    f"{', '.join(_STATUSES[:-1])} or {_STATUSES[-1]}")
        filters: dict[str, Any] = {k: req.args[k] for k in keys if k in req.args}
        if status is not None:
            filters["status"] = status
        try:
            rows = await self.control.query_recordings(**filters, limit=limit)
        except ValueError as exc:
            raise ProtocolError("bad_arg", str(exc)) from None
        return Reply(items=[recording_item(r) for r in rows])

    async def rec_keep(self, session: Session, req: Request) -> Reply:
        """REC.KEEP: set or clear a recording's ``keep`` mark; OK with its row."""
        only(req, "id", "keep")
        rec_id = arg(req, "id")
        keep = bool_arg(req, "keep")
        row = await self.control.keep_recording(rec_id, True if keep is None else keep)
        return Reply(recording_item(row))

    async def call_record(self, session: Session, req: Request) -> Reply:
        """CALL.RECORD: start/stop/pause/resume the recording of a live call."""
        only(req, "call", "action")
        call_id = arg(req, "call")
        raw = arg(req, "action")
        action = raw.lower()
        if action not in _ACTIONS:
            raise ProtocolError("bad_arg", f"action={raw!r}: use start, stop, pause or resume; "
                                f"usage: {VERBS[req.verb].usage}")
        if session.agent_line is not None:
            # Whether or not the call exists: an agent cannot probe for others' call ids.
            if call_id not in calls_on(self.control, session.agent_line):
                raise ProtocolError("forbidden", f"call {call_id} is not on your extension "
                                    f"{session.agent_line}; an agent records only its own "
                                    "calls (ask a supervisor)")
        try:
            recording = self.control.record(call_id, action, session.user)
        except CoreError as exc:
            raise core_error(exc) from None
        return Reply({"call": call_id, "recording": recording, "action": action})
