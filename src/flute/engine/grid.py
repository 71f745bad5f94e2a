"""An in-process implementation of Flower's `Grid`: the ServerApp's messages are delivered to
ClientApp instances in this process, one Context per hub, without Ray or a SuperLink.

It behaves like a deployment where it matters for correctness: every message content and every
reply crosses Flower's protobuf wire encoding (so nothing that could not travel reaches a hub),
message ids are assigned on push, replies carry `reply_to_message_id`, and a ClientApp exception
becomes an error reply with the same code and reason format a SuperNode produces. Hub faults can be
injected (`HubFault`) to test retries, dropouts and resumption.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal
from uuid import uuid4

from flute.engine.flower import (
    ClientApp,
    Context,
    Error,
    ErrorCode,
    Grid,
    Message,
    Metadata,
    RecordDict,
    Run,
    record_from_bytes,
    record_to_bytes,
)


@dataclass(frozen=True)
class HubFault:
    """A simulated hub failure: the hub answers its first `after` messages normally, then the next
    `times` messages (all later ones if None) it either raises inside its ClientApp ('raise') or
    never answers ('silent', as a crashed or disconnected SuperNode)."""

    kind: Literal["raise", "silent"]
    after: int = 0
    times: int | None = None

    def applies(self, message_index: int) -> bool:
        if message_index < self.after:
            return False
        return self.times is None or message_index < self.after + self.times


class SimulatedHubFailure(RuntimeError):
    """Raised inside a hub's ClientApp by a 'raise' HubFault."""


@dataclass
class InProcessHub:
    """One hub of an embedded run: its node id, its Context and an optional injected fault."""

    node_id: int
    context: Context
    fault: HubFault | None = None
    messages_seen: int = 0


def _over_the_wire(record: RecordDict) -> RecordDict:
    return record_from_bytes(record_to_bytes(record))


class InProcessGrid(Grid):
    """Flower Grid delivering messages synchronously to in-process ClientApps."""

    def __init__(self, client_app: ClientApp, hubs: Sequence[InProcessHub], run: Run) -> None:
        ids = [hub.node_id for hub in hubs]
        if len(set(ids)) != len(ids):
            raise ValueError(f"hub node ids must be unique, got {ids}")
        self._client_app = client_app
        self._hubs = {hub.node_id: hub for hub in hubs}
        self._run = run
        # Each reply with the monotonic time it became available (its "arrival").
        self._replies: dict[str, tuple[Message, float]] = {}

    def set_run(self, run: Run) -> None:
        if not isinstance(run, Run):
            raise TypeError(f"`run` must be a flwr Run, got {type(run).__name__}")
        self._run = run

    @property
    def run(self) -> Run:
        return self._run

    def create_message(
        self, content: RecordDict, message_type: str, dst_node_id: int, group_id: str, ttl: float | None = None
    ) -> Message:
        return Message(content, dst_node_id, message_type, ttl=ttl, group_id=group_id)

    def get_node_ids(self) -> Iterable[int]:
        return list(self._hubs)

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        """Deliver each message to its hub now; the reply (if the hub answers) waits to be pulled."""
        message_ids = []
        for message in messages:
            if message.metadata.dst_node_id not in self._hubs:
                raise ValueError(f"message for unknown node {message.metadata.dst_node_id}; nodes are {sorted(self._hubs)}")
            if not message.has_content():
                raise ValueError("an instruction message must have content")
            message_id = uuid4().hex
            delivered = self._delivered_copy(message, message_id)
            reply = self._deliver(self._hubs[message.metadata.dst_node_id], delivered)
            if reply is not None:
                self._replies[message_id] = (reply, time.monotonic())
            message_ids.append(message_id)
        return message_ids

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        return [self._replies.pop(message_id)[0] for message_id in message_ids if message_id in self._replies]

    def send_and_receive(self, messages: Iterable[Message], *, timeout: float | None = None) -> Iterable[Message]:
        """Delivery is synchronous, so every reply that will ever come exists after the push. A
        hub that did not answer is reported by its absence, as after a timeout in deployment; a
        reply that became available after `timeout` is late and left unpulled, as Flower does."""
        deadline = None if timeout is None else time.monotonic() + timeout
        message_ids = list(self.push_messages(messages))
        on_time = [m for m in message_ids if m in self._replies and (deadline is None or self._replies[m][1] <= deadline)]
        return list(self.pull_messages(on_time))

    def _delivered_copy(self, message: Message, message_id: str) -> Message:
        meta = message.metadata
        metadata = Metadata(
            run_id=self._run.run_id,
            message_id=message_id,
            src_node_id=meta.src_node_id,
            dst_node_id=meta.dst_node_id,
            reply_to_message_id="",
            group_id=meta.group_id,
            created_at=meta.created_at,
            ttl=meta.ttl,
            message_type=meta.message_type,
        )
        return Message(content=_over_the_wire(message.content), metadata=metadata)

    def _deliver(self, hub: InProcessHub, message: Message) -> Message | None:
        index = hub.messages_seen
        hub.messages_seen += 1
        fault = hub.fault if hub.fault is not None and hub.fault.applies(index) else None
        if fault is not None and fault.kind == "silent":
            return None
        try:
            if fault is not None:
                raise SimulatedHubFailure(f"simulated failure of node {hub.node_id} on message {index}")
            reply = self._client_app(message, hub.context)
        except Exception as exc:  # noqa: BLE001 - a hub's failure becomes its error reply, as in Flower
            reason = str(type(exc)) + ":<'" + str(exc) + "'>"
            return Message(Error(code=ErrorCode.CLIENT_APP_RAISED_EXCEPTION, reason=reason), reply_to=message)
        if reply.has_content():
            return Message(_over_the_wire(reply.content), reply_to=message)
        return reply
