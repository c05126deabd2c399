"""The voicemail verbs: ``VM.LIST``, ``VM.FETCH`` (metadata and the file's path; marks the
message heard) and ``VM.DELETE``.

They act only through :class:`~switchd.control.Control` (``voicemail_list``,
``voicemail_fetch``, ``voicemail_delete``, ``agent_status``), never on the store (the
CTI room imports no store: tests/test_layering.py).

Roles: every role may use them, because an agent listens to its own messages (its
mailbox is named after its agent id, and ``voicemail.new`` tells it one came). The
permission is checked on the arguments too (DESIGN §9): an agent reaches only the
mailboxes of the agents logged in at its phone, and a message of any other box is
``not_found`` to it (whether it exists is not its business); supervisors, the CRM and
admins reach every box.
"""

from __future__ import annotations

from typing import Any

from switchd.control import Control
from switchd.cti.codec import Request
from switchd.cti.server import Reply, Session
from switchd.cti.verbs import ALL_ROLES, VERBS, Verb, arg, int_arg, only
from switchd.exceptions import ProtocolError

__all__ = ["VM_VERBS", "VmVerbs"]

#: Most messages one VM.LIST returns (and what an agent's ownership check reads).
_LIMIT_MAX = 10_000

VM_VERBS: tuple[Verb, ...] = (
    Verb("VM.LIST", ALL_ROLES, "VM.LIST [mailbox=<box>] [limit=<n>]",
         "voicemail messages, newest first (an agent: its own mailbox)", "vm_list"),
    Verb("VM.FETCH", ALL_ROLES, "VM.FETCH id=<message>",
         "one message's details and the path of its WAV file; marks it heard", "vm_fetch"),
    Verb("VM.DELETE", ALL_ROLES, "VM.DELETE id=<message>",
         "delete a message (its file and its index row)", "vm_delete"),
)


class VmVerbs:
    """Handlers of :data:`VM_VERBS` (methods named after each verb's ``handler``)."""

    def __init__(self, control: Control) -> None:
        self.control = control

    def _own_boxes(self, session: Session) -> list[str] | None:
        """The mailboxes an agent session may reach (those of the agents at its phone);
        None for a role that reaches every box."""
        if session.agent_line is None:
            return None
        return sorted(a.agent_id for a in self.control.agent_status()
                      if a.line == session.agent_line)

    async def vm_list(self, session: Session, req: Request) -> Reply:
        """VM.LIST: one ITEM per message (id, mailbox, call, caller, received, duration_s,
        size, heard, sha256, file), newest first."""
        only(req, "mailbox", "limit")
        limit = int_arg(req, "limit", 1, _LIMIT_MAX) or 100
        mailbox = req.args.get("mailbox")
        if mailbox == "":
            raise ProtocolError("bad_arg", "mailbox= is empty; name a mailbox or leave it out; "
                                f"usage: {VERBS[req.verb].usage}")
        own = self._own_boxes(session)
        if own is None:
            return Reply(items=await self.control.voicemail_list(mailbox, limit=limit))
        if mailbox is not None and mailbox not in own:
            raise ProtocolError("forbidden", f"mailbox {mailbox} is not yours; an agent reads "
                                "its own mailbox (leave mailbox= out)")
        if mailbox is not None:
            items = await self.control.voicemail_list(mailbox, limit=limit)
        else:
            items = await self._list_boxes(own, limit)
        items.sort(key=lambda r: (str(r.get("received", "")), str(r.get("id", ""))),
                   reverse=True)
        return Reply(items=items[:limit])

    async def _list_boxes(self, boxes: list[str], limit: int) -> list[dict[str, Any]]:
        """Up to ``limit`` messages of each of ``boxes`` (unsorted); a box that does not
        exist (an agent id with no box configured, and no messages) adds none.
        Raises ProtocolError other than ``not_found`` as the index does."""
        items: list[dict[str, Any]] = []
        for box in boxes:
            try:
                items += await self.control.voicemail_list(box, limit=limit)
            except ProtocolError as exc:
                if exc.code != "not_found":
                    raise
        return items

    async def vm_fetch(self, session: Session, req: Request) -> Reply:
        """VM.FETCH: the message's fields (as VM.LIST) with ``heard=true``."""
        only(req, "id")
        message_id = arg(req, "id")
        await self._may_reach(session, message_id)
        return Reply(await self.control.voicemail_fetch(message_id))

    async def vm_delete(self, session: Session, req: Request) -> Reply:
        """VM.DELETE: the message's fields as they were, with ``deleted=true``."""
        only(req, "id")
        message_id = arg(req, "id")
        await self._may_reach(session, message_id)
        row = await self.control.voicemail_delete(message_id)
        return Reply({**row, "deleted": True})

    async def _may_reach(self, session: Session, message_id: str) -> None:
        """Refuse, before anything changes, a message outside an agent's own boxes: as
        ``not_found``, the same answer as for a message that does not exist."""
        own = self._own_boxes(session)
        if own is None:
            return
        try:
            row = await self.control.voicemail_get(message_id)
        except ProtocolError as exc:
            if exc.code != "not_found":
                raise
            row = None
        if row is None or row.get("mailbox") not in own:
            raise ProtocolError("not_found", f"no voicemail message {message_id!r} in your "
                                "mailbox; VM.LIST shows yours")
