"""Exceptions shared by every part of gslb."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable


class GslbError(Exception):
    """Base class of every error gslb raises on purpose."""


class ConfigError(GslbError):
    """A configuration that cannot be served.

    ``reasons`` holds every problem found, each already formatted as
    ``file:line: key.path: message`` so a user can fix them all in one pass.
    """

    def __init__(self, reasons: Iterable[str]) -> None:
        self.reasons: tuple[str, ...] = tuple(reasons)
        super().__init__("\n".join(self.reasons) or "invalid configuration")


def raise_if_cancelling() -> None:
    """Raise ``asyncio.CancelledError`` when the current task has a
    cancellation pending (``Task.cancelling()``).

    For the ``except Exception`` of a long-running loop (prober, Redis
    watcher and writer, drain watcher): a library, or ``asyncio.timeout``
    when the cancel lands as its deadline passes, may turn a cancellation
    into another exception; the loop would then retry forever and the task
    never stop."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def cancel_and_wait(task: asyncio.Task[None]) -> None:
    """Cancel ``task`` (a background loop being stopped) and return once it
    has ended; its ``CancelledError`` is not raised here."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
