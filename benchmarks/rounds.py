"""Round latency: embedded engine (in-process Grid) vs deployment (SuperLink + SuperNodes, TLS,
node authentication) on loopback, for 3 and 10 hubs and 1e3 / 1e5 / 1e6 float64 parameters.

A trivial round: the ServerApp sends the weights to every hub, each hub returns weights + 1
(the reply is checked). The SAME ServerApp/ClientApp pair runs in both engines; the ServerApp
times each round itself, so process start-up is not counted. A round pushes the messages and
polls for replies every POLL_S seconds (`exchange`): Flower's `Grid.send_and_receive` polls the
SuperLink every 3 s, which alone would put up to 3 s on every deployed round. Reported: the
median round over ROUNDS rounds per size, the deploy/embedded ratio, and the bytes per hub per
round (Flower's wire encoding of the message content, down + up).

Usage: .venv/bin/python benchmarks/rounds.py [--hubs 3,10] [--rounds 2] [--json PATH]
(about 4 min on 2 busy cores; most of it is the 10-hub deployment)
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from flute.engine.flower import (
    SUPERLINK_NODE_ID,
    Array,
    ArrayRecord,
    ClientApp,
    ConfigRecord,
    Context,
    Grid,
    Message,
    RecordDict,
    Run,
    ServerApp,
    coordinator_identity,
    record_to_bytes,
)

SIZES: dict[str, int] = {"1e3": 1_000, "1e5": 100_000, "1e6": 1_000_000}
POLL_S = 0.05
APP_MODULE = "rounds_bench_app"
RUN_ID = 1

server_app = ServerApp()
client_app = ClientApp()


def exchange(grid: Grid, messages: list[Message], timeout_s: float) -> list[Message]:
    """Push `messages`, then pull replies every POLL_S seconds until all arrived or time is up."""
    pending = set(grid.push_messages(messages))
    replies: list[Message] = []
    deadline = time.monotonic() + timeout_s
    while pending and time.monotonic() < deadline:
        arrived = list(grid.pull_messages(pending))
        replies.extend(arrived)
        pending -= {reply.metadata.reply_to_message_id for reply in arrived}
        if pending:
            time.sleep(POLL_S)
    return replies


def _weights_message(weights: np.ndarray, node: int) -> Message:
    return Message(RecordDict({"w": ArrayRecord({"w": Array(weights)})}), dst_node_id=node, message_type="train")


@server_app.main()
def _rounds(grid: Grid, context: Context) -> None:
    """For each size: ROUNDS rounds of send-weights / receive-weights+1; write timings as JSON."""
    rounds = int(context.run_config["rounds"])
    nodes = list(grid.get_node_ids())
    timings: dict[str, list[float]] = {}
    wire_bytes: dict[str, int] = {}
    for label in str(context.run_config["sizes"]).split(","):
        weights = np.zeros(SIZES[label])
        timings[label] = []
        for _ in range(rounds):
            started = time.perf_counter()
            replies = exchange(grid, [_weights_message(weights, node) for node in nodes], timeout_s=600)
            timings[label].append(time.perf_counter() - started)
            if len(replies) != len(nodes) or any(reply.has_error() for reply in replies):
                raise RuntimeError(f"round at size {label}: {len(replies)} of {len(nodes)} hubs answered without error")
            returned = replies[0].content["w"]["w"].numpy()
            if not np.array_equal(returned, weights + 1):
                raise RuntimeError(f"round at size {label}: a hub returned wrong weights")
        down = record_to_bytes(_weights_message(weights, nodes[0]).content)
        up = record_to_bytes(replies[0].content)
        wire_bytes[label] = len(down) + len(up)
    Path(str(context.run_config["out-file"])).write_text(json.dumps({"timings": timings, "bytes": wire_bytes}))


@client_app.train()
def _plus_one(message: Message, context: Context) -> Message:
    weights = message.content["w"]["w"].numpy()
    return Message(RecordDict({"w": ArrayRecord({"w": Array(weights + 1)})}), reply_to=message)


def run_config(rounds: int, out_file: Path) -> dict[str, str | int]:
    return {"rounds": rounds, "sizes": ",".join(SIZES), "out-file": str(out_file)}


def measure_embedded(hubs: int, rounds: int, workdir: Path) -> dict[str, object]:
    from flute.engine.grid import InProcessGrid, InProcessHub

    out_file = workdir / f"embedded-{hubs}.json"
    config = run_config(rounds, out_file)
    nodes = [InProcessHub(100 + i, Context(RUN_ID, 100 + i, {}, RecordDict(), dict(config))) for i in range(hubs)]
    grid = InProcessGrid(client_app, nodes, Run.create_empty(RUN_ID))
    with coordinator_identity(RUN_ID):
        server_app(grid, Context(RUN_ID, SUPERLINK_NODE_ID, {}, RecordDict(), dict(config)))
    return json.loads(out_file.read_text())


def measure_deployed(hubs: int, rounds: int, workdir: Path) -> dict[str, object]:
    from flute.engine import deploy, pki

    root = workdir / f"deploy-{hubs}"
    layout = pki.init_pki(root / "pki")
    names = [f"hub-{i}" for i in range(hubs)]
    for name in names:
        pki.issue_hub_key(layout.root, name)
    port = deploy.free_port()
    out_file = root / "timings.json"
    bundle = deploy.AppBundle(
        f"{APP_MODULE}:server_app",
        f"{APP_MODULE}:client_app",
        run_config(rounds, out_file),
        {f"{APP_MODULE}.py": Path(__file__).read_bytes()},
    )
    with deploy.Coordinator(layout.root, root / "coordinator", port=port) as coordinator:
        servers = [
            deploy.HubServer(name, root / "homes" / name, f"127.0.0.1:{port}", layout.ca_cert,
                             layout.hub_private_key(name), root / "nodes" / name)
            for name in names
        ]  # fmt: skip
        try:
            coordinator.control.wait_for_hubs(names)
            coordinator.control.run(bundle, timeout_s=600)
        finally:
            deploy.stop_all(server.process for server in servers)
    return json.loads(out_file.read_text())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hubs", default="3,10", help="Comma-separated hub counts.")
    parser.add_argument("--rounds", type=int, default=2, help="Rounds per size (the median is reported).")
    parser.add_argument("--json", type=Path, help="Write the figures as a flat JSON object.")
    args = parser.parse_args()

    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="flute-rounds-") as tmp:
        for hubs in [int(h) for h in args.hubs.split(",")]:
            started = time.perf_counter()
            embedded = measure_embedded(hubs, args.rounds, Path(tmp))
            deployed = measure_deployed(hubs, args.rounds, Path(tmp))
            print(f"[{hubs} hubs measured in {time.perf_counter() - started:.0f} s]", file=sys.stderr)
            for label in SIZES:
                figures[f"round_s_embedded_{hubs}h_{label}"] = statistics.median(embedded["timings"][label])  # type: ignore[index]
                figures[f"round_s_deploy_{hubs}h_{label}"] = statistics.median(deployed["timings"][label])  # type: ignore[index]
                figures[f"bytes_per_hub_{label}"] = float(deployed["bytes"][label])  # type: ignore[index]

    print(f"{'hubs':>4} {'params':>6} {'embedded s':>11} {'deploy s':>9} {'deploy/embedded':>16} {'bytes/hub/round':>16}")
    for hubs in [int(h) for h in args.hubs.split(",")]:
        for label in SIZES:
            emb = figures[f"round_s_embedded_{hubs}h_{label}"]
            dep = figures[f"round_s_deploy_{hubs}h_{label}"]
            print(f"{hubs:>4} {label:>6} {emb:>11.4f} {dep:>9.3f} {dep / emb:>15.0f}x {figures[f'bytes_per_hub_{label}']:>16,.0f}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
