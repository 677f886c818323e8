"""The test clock, for every Python process the tests start.

The tests set ``NOKTEST_CLOCK`` to ``<ISO instant>@<real epoch seconds>`` and put this
directory on ``PYTHONPATH``; ``sitecustomize`` beside this file imports it at start-up, so
a ``nok`` subprocess reads the same clock as the test that started it: the test's instant
plus the real time that has passed since. Without the variable nothing changes. nok itself
has no clock override on purpose: a setting that moves the clock would let anyone backdate
notes or hold off a purge.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Callable


def clock(spec: str) -> Callable[[], dt.datetime]:
    instant, _, real = spec.partition("@")
    base = dt.datetime.fromisoformat(instant)
    started = float(real)

    def utcnow() -> dt.datetime:
        return base + dt.timedelta(seconds=time.time() - started)

    return utcnow


def install(spec: str) -> None:
    import vault.dates

    vault.dates.utcnow = clock(spec)  # type: ignore[assignment]


if os.environ.get("NOKTEST_CLOCK"):
    install(os.environ["NOKTEST_CLOCK"])
