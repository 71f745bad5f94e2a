"""Stage bookkeeping shared by the hub and server state machines.

A protocol step may only run in the stage that precedes it, and any failure inside a
step aborts the session for good: a hub that saw tampering must not be talked into
continuing, and a server that lost its threshold must not produce a partial result.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from enum import Enum
from typing import Generic, TypeVar

from flute.privacy.secagg.errors import ProtocolError

StageT = TypeVar("StageT", bound=Enum)


class StageTracker(Generic[StageT]):
    """Current stage plus the reason of an abort, if any."""

    def __init__(self, owner: str, first: StageT) -> None:
        self.owner = owner
        self.current = first
        self.abort_reason: str | None = None

    @contextmanager
    def step(self, name: str, expected: StageT, following: StageT) -> Iterator[None]:
        if self.abort_reason is not None:
            raise ProtocolError(f"{self.owner}: {name} refused, the session aborted earlier ({self.abort_reason})")
        if self.current != expected:
            raise ProtocolError(
                f"{self.owner}: {name} called in stage {self.current.name}, it belongs to stage {expected.name}"
            )
        try:
            yield
        except Exception as exc:
            self.abort_reason = f"{type(exc).__name__}: {exc}"
            raise
        self.current = following
