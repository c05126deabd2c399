"""Times as text: one format for CDR rows, CTI events and replies.

Epoch seconds (UTC) become ``YYYY-MM-DDTHH:MM:SS.mmmZ``, rounded to the millisecond,
so the time of ``call.ended`` on the socket and the ``end`` column of its CDR are the
same text.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

__all__ = ["iso_utc"]

_EPOCH = datetime(1970, 1, 1)


def iso_utc(epoch_s: float) -> str:
    """Format epoch seconds (UTC) as ``YYYY-MM-DDTHH:MM:SS.mmmZ``, rounded to the ms.

    Fixed width (years 0001–9999), so the text sorts in time order. Raises
    ``ValueError`` for NaN, infinity or a time outside those years.
    """
    if not math.isfinite(epoch_s):
        raise ValueError(f"not a finite epoch time: {epoch_s!r}")
    try:
        moment = _EPOCH + timedelta(milliseconds=round(epoch_s * 1000))
    except OverflowError as exc:
        raise ValueError(f"epoch time out of range: {epoch_s!r}") from exc
    return moment.isoformat(timespec="milliseconds") + "Z"
