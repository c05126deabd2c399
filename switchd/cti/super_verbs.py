"""The softphone's call-handling verbs beyond the handset: ``CALL.TRANSFER``,
``CALL.CONSULT``, ``CALL.COMPLETE``, ``CALL.CANCEL``, ``CALL.CONFERENCE``,
``CALL.DIAL`` and ``CALL.DTMF``."""

from __future__ import annotations

from switchd.control import Control
from switchd.cti.verbs import Verb

__all__ = ["SUPER_VERBS", "SuperVerbs"]

SUPER_VERBS: tuple[Verb, ...] = ()


class SuperVerbs:
    """Handlers of :data:`SUPER_VERBS`."""

    def __init__(self, control: Control) -> None:
        self.control = control
