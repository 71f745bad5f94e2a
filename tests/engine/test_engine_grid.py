"""The in-process Grid delivers Flower messages to the right hub's ClientApp and returns its
replies, errors included, as a deployment would."""

from __future__ import annotations

import numpy as np
import pytest

from flute.engine.embedded import EMBEDDED_RUN_ID
from flute.engine.flower import (
    Array,
    ArrayRecord,
    ClientApp,
    ConfigRecord,
    Context,
    ErrorCode,
    Message,
    RecordDict,
    Run,
    coordinator_identity,
)
from flute.engine.grid import HubFault, InProcessGrid, InProcessHub

echo_app = ClientApp()


@echo_app.query("echo")
def _echo(message: Message, context: Context) -> Message:
    """Replies with its hub name and twice the array it got; counts calls in its own state."""
    calls = int(context.state.config_records.get("calls", ConfigRecord({"n": 0}))["n"]) + 1  # type: ignore[arg-type]
    context.state["calls"] = ConfigRecord({"n": calls})
    doubled = message.content.array_records["x"]["v"].numpy() * 2
    content = RecordDict({"who": ConfigRecord({"hub": str(context.node_config["hub-name"]), "calls": calls}), "x": ArrayRecord({"v": Array(doubled)})})
    return Message(content, reply_to=message)


@echo_app.query("boom")
def _boom(message: Message, context: Context) -> Message:
    raise ValueError("this hub refuses")


def _grid(faults: dict[int, HubFault] | None = None) -> InProcessGrid:
    faults = faults or {}
    hubs = [
        InProcessHub(node, Context(EMBEDDED_RUN_ID, node, {"hub-name": f"hub-{node}"}, RecordDict(), {}), faults.get(node))
        for node in (5, 6, 7)
    ]
    return InProcessGrid(echo_app, hubs, Run.create_empty(EMBEDDED_RUN_ID))


def _message(node: int, kind: str = "query.echo") -> Message:
    return Message(RecordDict({"x": ArrayRecord({"v": Array(np.arange(3.0) + node)})}), node, kind, group_id="g")


def test_messages_reach_their_hub_and_replies_match() -> None:
    grid = _grid()
    with coordinator_identity(EMBEDDED_RUN_ID):
        messages = [_message(node) for node in (7, 5, 6)]
        ids = list(grid.push_messages(messages))
        replies = list(grid.pull_messages(ids))
    assert sorted(grid.get_node_ids()) == [5, 6, 7]
    assert len(set(ids)) == 3
    assert sorted(r.metadata.reply_to_message_id for r in replies) == sorted(ids)
    for reply in replies:
        node = reply.metadata.src_node_id
        assert reply.content.config_records["who"]["hub"] == f"hub-{node}"
        np.testing.assert_array_equal(reply.content.array_records["x"]["v"].numpy(), 2 * (np.arange(3.0) + node))
    assert list(grid.pull_messages(ids)) == []  # a reply is handed out once


def test_each_hub_keeps_its_own_context_state() -> None:
    grid = _grid()
    with coordinator_identity(EMBEDDED_RUN_ID):
        grid.send_and_receive([_message(5), _message(6)])
        replies = list(grid.send_and_receive([_message(5)]))
    assert replies[0].content.config_records["who"]["calls"] == 2


def test_a_raising_hub_returns_an_error_reply_like_a_supernode() -> None:
    grid = _grid()
    with coordinator_identity(EMBEDDED_RUN_ID):
        (reply,) = grid.send_and_receive([_message(6, "query.boom")])
    assert reply.has_error() and not reply.has_content()
    assert reply.error.code == ErrorCode.CLIENT_APP_RAISED_EXCEPTION
    assert "ValueError" in reply.error.reason and "this hub refuses" in reply.error.reason


def test_an_unregistered_message_type_is_an_error_reply() -> None:
    grid = _grid()
    with coordinator_identity(EMBEDDED_RUN_ID):
        (reply,) = grid.send_and_receive([_message(5, "train.unknown")])
    assert reply.has_error() and "No train function registered" in reply.error.reason


def test_injected_faults_silence_or_break_a_hub_for_a_while() -> None:
    grid = _grid({5: HubFault("silent", after=1, times=1), 6: HubFault("raise")})
    with coordinator_identity(EMBEDDED_RUN_ID):
        first = {r.metadata.src_node_id: r for r in grid.send_and_receive([_message(5), _message(6)])}
        second = {r.metadata.src_node_id: r for r in grid.send_and_receive([_message(5), _message(6)])}
        third = {r.metadata.src_node_id: r for r in grid.send_and_receive([_message(5)])}
    assert first[5].has_content() and first[6].has_error()
    assert 5 not in second and second[6].has_error()  # silent: no reply at all
    assert third[5].has_content()  # the fault lasted one message


def test_unknown_destination_is_refused() -> None:
    grid = _grid()
    with coordinator_identity(EMBEDDED_RUN_ID), pytest.raises(ValueError, match="unknown node 9"):
        grid.push_messages([_message(9)])
