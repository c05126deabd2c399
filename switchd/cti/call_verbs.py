"""The softphone's call-handling verbs beyond the handset: ``CALL.TRANSFER``,
``CALL.CONSULT``, ``CALL.COMPLETE``, ``CALL.CANCEL``, ``CALL.CONFERENCE``,
``CALL.DIAL`` and ``CALL.DTMF``."""

from __future__ import annotations

from switchd.control import Control
from switchd.cti.verbs import Verb

__all__ = ["CALL_VERBS", "CallVerbs"]

CALL_VERBS: tuple[Verb, ...] = ()


class CallVerbs:
    """Handlers of :data:`CALL_VERBS`."""

    def __init__(self, control: Control) -> None:
        self.control = control
