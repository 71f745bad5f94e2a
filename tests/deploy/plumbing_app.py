"""A minimal Flower app for testing the deployment plumbing (shipped inside the FAB).

Each hub answers with a number derived from its node config (the hub name's byte sum) and the
length of its hub-home path; the ServerApp writes the per-hub answers to `output-dir`. The
test recomputes the same numbers, so a hub that answered with another hub's config, or not at
all, fails it. Only the ServerApp/ClientApp Flower API is used, as FLUTE's own apps do.
"""

from __future__ import annotations

import json
from pathlib import Path

from flute.engine.flower import ClientApp, ConfigRecord, Context, Grid, Message, RecordDict, ServerApp
from flute.engine.sources import HUB_HOME_KEY, HUB_NAME_KEY

server_app = ServerApp()
failing_server_app = ServerApp()
client_app = ClientApp()


def hub_answer(name: str, home: str) -> float:
    return float(sum(name.encode("utf-8")) * 1000 + len(home))


@server_app.main()
def _main(grid: Grid, context: Context) -> None:
    nodes = list(grid.get_node_ids())
    queries = [
        Message(RecordDict({"ask": ConfigRecord({"what": "answer"})}), dst_node_id=node, message_type="query")
        for node in nodes
    ]
    answers: dict[str, float] = {}
    for reply in grid.send_and_receive(queries, timeout=120):
        if reply.has_error():
            raise RuntimeError(f"hub node {reply.metadata.src_node_id} failed: {reply.error.reason}")
        answers[str(reply.content["answer"]["hub"])] = float(reply.content["answer"]["value"])
    out = Path(str(context.run_config["output-dir"]))
    out.mkdir(parents=True, exist_ok=True)
    (out / "answers.json").write_text(json.dumps(answers, sort_keys=True), encoding="utf-8")


@client_app.query()
def _query(message: Message, context: Context) -> Message:
    name = str(context.node_config[HUB_NAME_KEY])
    home = str(context.node_config[HUB_HOME_KEY])
    answer = ConfigRecord({"hub": name, "value": hub_answer(name, home)})
    return Message(RecordDict({"answer": answer}), reply_to=message)


@failing_server_app.main()
def _fail(grid: Grid, context: Context) -> None:
    raise RuntimeError("plumbing failure requested by the test")
