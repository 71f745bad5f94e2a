"""Secure aggregation benchmark: one federated round, plaintext vs FLUTE's secure aggregation vs
Flower's SecAgg+ (flwr 1.41 `SecAggPlusWorkflow` + `secaggplus_mod`), all three over FLUTE's
in-process Grid (every message crosses Flower's protobuf wire encoding), same machine, one run.

A round: the coordinator sends the global weights of a linear model with P parameters to every
hub; each hub takes ONE least-squares gradient step on its synthetic data (8 rows x P features,
the same feature matrix at every hub, its own labels) and returns its update; the coordinator
obtains the SUM (plaintext: adds the updates it receives in the clear; FLUTE: the engine's own
`SecureSummer` and hub handlers of `flute.engine.hub_secagg`; Flower: its SecAgg+ workflow with
FedAvg over the masked [weight, weight * parameters]). Hubs run one after another in this
process, so a round's time is the SUM of the hubs' work plus the coordinator's. Times are CPU
seconds of this process (`time.process_time`, all threads): on a shared machine wall-clock time
moves with other processes' load by several-fold, CPU time much less. Wall-clock seconds are
reported alongside. Plaintext and FLUTE rounds run REPEATS times interleaved, the fastest of
each is kept; Flower's round runs once.

Secure-aggregation parameters: complete graph for 3 and 10 hubs; for 100 hubs SecAgg+ with
k = 8 neighbours (Flower: num_shares = 9); threshold = a majority of each hub's share holders.

Usage: .venv/bin/python benchmarks/secagg.py [--json PATH] [--max-params 1e6]
Keys per combination <h>h_<p> (e.g. 10h_1e6): overhead_ratio (FLUTE / plaintext round time),
flower_secaggplus_ratio (Flower SecAgg+ / plaintext), mask_ms_per_hub (a hub's masked_input
stage), bytes_ratio (FLUTE upload per hub / plaintext upload per hub).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
HUB_COUNTS = (3, 10, 100)
PARAM_COUNTS = (1_000, 100_000, 1_000_000)
ROWS_PER_HUB = 8
LEARNING_RATE = 0.1
SKIP_ABOVE_S = 120.0
SPARSE_NEIGHBOURS = 8
REPEATS = 3
os.environ["FLWR_TELEMETRY_ENABLED"] = "0"
os.environ["FLWR_DISABLE_UPDATE_CHECK"] = "1"


def label(hubs: int, params: int) -> str:
    return f"{hubs}h_1e{round(math.log10(params))}"


class BenchKind(str, Enum):
    PLAIN = "train.plain"
    SECURE = "train.secure"


@dataclass
class Workload:
    """Synthetic data of one combination: the shared features and each hub's labels."""

    params: int
    hubs: int
    features: np.ndarray = field(init=False)
    labels: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        rng = np.random.default_rng(self.params + self.hubs)
        self.features = rng.standard_normal((ROWS_PER_HUB, self.params)) / math.sqrt(self.params)
        self.labels = rng.standard_normal((self.hubs, ROWS_PER_HUB))

    def local_step(self, hub: int, weights: np.ndarray) -> np.ndarray:
        residual = self.features @ weights - self.labels[hub]
        return weights - LEARNING_RATE * (self.features.T @ residual) / ROWS_PER_HUB


def metered_grid(client_app, workload: Workload, node_configs: list[dict]):  # type: ignore[no-untyped-def]
    """FLUTE's InProcessGrid counting the wire bytes of every reply per hub (upload)."""
    from flute.engine.embedded import EMBEDDED_RUN_ID, FIRST_HUB_NODE_ID
    from flute.engine.flower import Context, RecordDict, Run, record_to_bytes
    from flute.engine.grid import InProcessGrid, InProcessHub

    class MeteredGrid(InProcessGrid):
        uploaded: dict[int, int]

        def pull_messages(self, message_ids):  # type: ignore[no-untyped-def]
            replies = list(super().pull_messages(message_ids))
            for reply in replies:
                if reply.has_content():
                    node = reply.metadata.src_node_id
                    self.uploaded[node] = self.uploaded.get(node, 0) + len(record_to_bytes(reply.content))
            return replies

    hubs = [
        InProcessHub(FIRST_HUB_NODE_ID + index, Context(EMBEDDED_RUN_ID, FIRST_HUB_NODE_ID + index, config, RecordDict(), {}))
        for index, config in enumerate(node_configs)
    ]
    grid = MeteredGrid(client_app, hubs, Run.create_empty(EMBEDDED_RUN_ID))
    grid.uploaded = {}
    return grid


# -- plaintext and FLUTE ------------------------------------------------------------------------


def flute_apps(workload: Workload, spec):  # type: ignore[no-untyped-def]
    """The hubs' ClientApp: plaintext updates, or FLUTE's secure-aggregation handlers."""
    from flute.engine import hub_secagg
    from flute.engine.flower import Array, ArrayRecord, ClientApp, Message, RecordDict
    from flute.engine.pet_records import PetMessageKind, RoundAnnouncement, SecAggMessage

    app = ClientApp()
    mask_seconds: list[float] = []

    def update(message: Message, context) -> np.ndarray:  # type: ignore[no-untyped-def]
        weights = message.content.array_records["w"]["w"].numpy()
        return workload.local_step(int(context.node_config["hub-index"]), weights)

    @app.train("plain")
    def plain(message: Message, context) -> Message:  # type: ignore[no-untyped-def]
        return Message(RecordDict({"u": ArrayRecord({"u": Array(update(message, context))})}), reply_to=message)

    @app.train("secure")
    def secure(message: Message, context) -> Message:  # type: ignore[no-untyped-def]
        announcement = RoundAnnouncement.from_record(message.content)
        reply = hub_secagg.start_round(spec, context, announcement, update(message, context), str(context.node_config["hub-name"]))
        return Message(reply, reply_to=message)

    def stage(kind: PetMessageKind):  # type: ignore[no-untyped-def]
        def handler(message: Message, context) -> Message:  # type: ignore[no-untyped-def]
            started = time.process_time()
            reply = hub_secagg.continue_round(context, kind, SecAggMessage.from_record(message.content))
            if kind is PetMessageKind.SECAGG_MASK:
                mask_seconds.append(time.process_time() - started)
            return Message(reply, reply_to=message)

        return handler

    for kind in (PetMessageKind.SECAGG_SHARE, PetMessageKind.SECAGG_MASK, PetMessageKind.SECAGG_CONFIRM, PetMessageKind.SECAGG_UNMASK):
        app.query(kind.value.removeprefix("query."))(stage(kind))
    return app, mask_seconds


def default_neighbours(hubs: int) -> int | None:
    return SPARSE_NEIGHBOURS if hubs > 10 else None


@dataclass(frozen=True, order=True)
class RoundCost:
    """Ordered by CPU seconds, so `min` keeps the least disturbed repetition."""

    cpu_s: float
    wall_s: float
    upload_bytes_per_hub: float = 0.0
    mask_ms_per_hub: float = 0.0


def flute_round(workload: Workload, secure: bool, neighbours: int | None = None) -> RoundCost:
    """One round; `neighbours` = SecAgg+ k (None: every pair masks). mask_ms_per_hub: CPU ms of
    a hub's masked_input stage."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from flute.engine.flower import Array, ArrayRecord, Message, RecordDict, coordinator_identity
    from flute.engine.hub_identity import ENROLMENT_KEY, MEMORY_IDENTITY_KEY, enrolment_json, parse_enrolment, private_hex, public_hex
    from flute.engine.secure_sum import SecureSummer
    from flute.engine.sources import MEMORY_SOURCE_KEY
    from flute.engine.spec import StudySpec

    spec = StudySpec.from_mapping(
        {
            "study_id": "secagg-benchmark",
            "name": "secure aggregation benchmark",
            "cohort": {"variables": ["psa"]},
            "model": {"name": "logistic_regression"},
            "evaluation": {"leave_one_hub_out": False},
            "pets": {"mode": "secagg", "secagg": {"neighbours": neighbours, "clip_bound": 2.0**20}},
        }
    )
    names = [f"hub-{index:03d}" for index in range(workload.hubs)]
    keys = {name: Ed25519PrivateKey.generate() for name in names}
    enrolment = enrolment_json({name: public_hex(key) for name, key in keys.items()})
    # In-memory hubs of this process: the marker tells flute.engine.hub_identity to take the key
    # from the node config (never possible for a deployed hub).
    configs = [
        {"hub-name": name, "hub-index": index, ENROLMENT_KEY: enrolment, MEMORY_IDENTITY_KEY: private_hex(keys[name]), MEMORY_SOURCE_KEY: "benchmark"}
        for index, name in enumerate(names)
    ]
    app, mask_seconds = flute_apps(workload, spec)
    grid = metered_grid(app, workload, configs)
    nodes = {node: names[index] for index, node in enumerate(sorted(grid.get_node_ids()))}
    content = RecordDict({"w": ArrayRecord({"w": Array(np.zeros(workload.params))})})

    def ask(kind: Enum, payloads, group: str, required: int) -> dict:  # type: ignore[no-untyped-def]
        messages = [Message(record, node, kind.value, group_id=group) for node, record in payloads.items()]
        answers = {reply.metadata.src_node_id: reply.content for reply in grid.send_and_receive(messages) if not reply.has_error()}
        if len(answers) < required:
            raise RuntimeError(f"{group}: {len(answers)} answers, {required} needed")
        return answers

    with coordinator_identity(1):
        started, started_cpu = time.perf_counter(), time.process_time()
        if secure:
            summer = SecureSummer(spec, "bench", parse_enrolment(enrolment, where="benchmark"), ask)
            from flute.engine.hub_secagg import float_encoding

            total = summer.total(BenchKind.SECURE, content, nodes, "round-1", length=workload.params, encoding=float_encoding(spec)).total
        else:
            answers = ask(BenchKind.PLAIN, {node: content for node in nodes}, "round-1", workload.hubs)
            total = np.sum([record.array_records["u"]["u"].numpy() for record in answers.values()], axis=0)
        seconds, cpu = time.perf_counter() - started, time.process_time() - started_cpu
    expected = np.sum([workload.local_step(hub, np.zeros(workload.params)) for hub in range(workload.hubs)], axis=0)
    if not np.allclose(total, expected, atol=workload.hubs * 2.0**-23):
        raise AssertionError("the round's sum is wrong")
    mask_ms = 1000.0 * float(np.mean(mask_seconds)) if mask_seconds else 0.0
    return RoundCost(cpu, seconds, float(np.mean(list(grid.uploaded.values()))), mask_ms)


# -- Flower's SecAgg+ -----------------------------------------------------------------------------


def flower_round(workload: Workload) -> RoundCost:
    """One fit round of Flower's DefaultWorkflow with SecAggPlusWorkflow over the same Grid."""
    from flwr.client import NumPyClient
    from flwr.client.mod import secaggplus_mod
    from flwr.clientapp import ClientApp
    from flwr.common import ndarrays_to_parameters
    from flwr.server import LegacyContext, ServerConfig
    from flwr.server.strategy import FedAvg
    from flwr.server.workflow import DefaultWorkflow, SecAggPlusWorkflow

    from flute.engine.flower import Context, RecordDict, coordinator_identity

    class Hub(NumPyClient):
        def __init__(self, index: int) -> None:
            self.index = index

        def fit(self, parameters, config):  # type: ignore[no-untyped-def]
            return [workload.local_step(self.index, parameters[0])], ROWS_PER_HUB, {}

    app = ClientApp(client_fn=lambda context: Hub(int(context.node_config["hub-index"])).to_client(), mods=[secaggplus_mod])
    grid = metered_grid(app, workload, [{"hub-index": index} for index in range(workload.hubs)])
    shares = SPARSE_NEIGHBOURS + 1 if workload.hubs > 10 else workload.hubs
    strategy = FedAvg(
        fraction_fit=1.0, fraction_evaluate=0.0, min_fit_clients=workload.hubs, min_available_clients=workload.hubs,
        initial_parameters=ndarrays_to_parameters([np.zeros(workload.params)]),
    )
    context = LegacyContext(context=Context(1, 0, {}, RecordDict(), {}), config=ServerConfig(num_rounds=1), strategy=strategy)
    workflow = DefaultWorkflow(fit_workflow=SecAggPlusWorkflow(num_shares=shares, reconstruction_threshold=shares // 2 + 1, clipping_range=8.0))
    with coordinator_identity(1):
        started, started_cpu = time.perf_counter(), time.process_time()
        workflow(grid, context)
        return RoundCost(time.process_time() - started_cpu, time.perf_counter() - started)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, default=None, help="write the figures as a flat JSON object")
    parser.add_argument("--max-params", type=float, default=1e6, help="largest parameter count to run")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO_ROOT / "src"))
    import logging

    from flwr.common.logger import FLOWER_LOGGER

    FLOWER_LOGGER.setLevel(logging.ERROR)
    flute_round(Workload(1000, 3), secure=True)  # warm-up: imports, first key agreements
    figures: dict[str, float] = {}
    rows = []
    for params in [p for p in PARAM_COUNTS if p <= args.max_params]:
        for hubs in HUB_COUNTS:
            key, workload = label(hubs, params), Workload(params, hubs)
            plain = flute_round(workload, secure=False)
            if plain.wall_s * 4 > SKIP_ABOVE_S:  # large rounds: secure ones cost up to a few times plaintext
                rows.append((key, f"{plain.cpu_s:.3f}", "skipped (> 2 min expected)", "", "", "", ""))
                continue
            ours = flute_round(workload, secure=True, neighbours=default_neighbours(hubs))
            for _ in range(REPEATS - 1 if plain.wall_s * REPEATS * 4 < SKIP_ABOVE_S else 0):
                plain = min(plain, flute_round(workload, secure=False))
                ours = min(ours, flute_round(workload, secure=True, neighbours=default_neighbours(hubs)))
            flower = flower_round(workload) if ours.wall_s * 4 < SKIP_ABOVE_S else RoundCost(math.nan, math.nan)
            figures[f"overhead_ratio_{key}"] = ours.cpu_s / plain.cpu_s
            figures[f"flower_secaggplus_ratio_{key}"] = flower.cpu_s / plain.cpu_s
            figures[f"mask_ms_per_hub_{key}"] = ours.mask_ms_per_hub
            figures[f"bytes_ratio_{key}"] = ours.upload_bytes_per_hub / plain.upload_bytes_per_hub
            figures[f"overhead_ratio_wall_{key}"] = ours.wall_s / plain.wall_s
            figures[f"plaintext_round_cpu_s_{key}"] = plain.cpu_s
            figures[f"bytes_per_hub_plaintext_{key}"] = plain.upload_bytes_per_hub
            figures[f"bytes_per_hub_flute_{key}"] = ours.upload_bytes_per_hub
            rows.append(
                (
                    key,
                    f"{plain.cpu_s:.3f} ({plain.wall_s:.3f})",
                    f"{ours.cpu_s:.3f} ({ours.wall_s:.3f}) {ours.cpu_s / plain.cpu_s:.2f}x",
                    f"{flower.cpu_s:.3f} ({flower.wall_s:.3f}) {flower.cpu_s / plain.cpu_s:.2f}x",
                    f"{ours.mask_ms_per_hub:.1f}",
                    f"{plain.upload_bytes_per_hub:,.0f}",
                    f"{ours.upload_bytes_per_hub:,.0f} ({ours.upload_bytes_per_hub / plain.upload_bytes_per_hub:.4f}x)",
                )
            )
            print(" | ".join(rows[-1]), flush=True)
    if args.max_params >= 1e6:
        # The same 10-hub, 1e6-parameter round with a SecAgg+ graph of k = 4 (about log2 n) instead
        # of the complete graph: each hub expands 5 masks instead of 10.
        workload = Workload(1_000_000, 10)
        plain, sparse = flute_round(workload, secure=False), flute_round(workload, secure=True, neighbours=4)
        for _ in range(REPEATS - 1):
            plain, sparse = min(plain, flute_round(workload, secure=False)), min(sparse, flute_round(workload, secure=True, neighbours=4))
        figures["overhead_ratio_10h_1e6_k4"] = sparse.cpu_s / plain.cpu_s
        figures["mask_ms_per_hub_10h_1e6_k4"] = sparse.mask_ms_per_hub
        rows.append(("10h_1e6 k=4", f"{plain.cpu_s:.3f} ({plain.wall_s:.3f})", f"{sparse.cpu_s:.3f} ({sparse.wall_s:.3f}) {sparse.cpu_s / plain.cpu_s:.2f}x", "", f"{sparse.mask_ms_per_hub:.1f}", "", ""))
    from rich.console import Console
    from rich.table import Table

    table = Table(title="One round (sequential hubs, one process): plaintext vs FLUTE secure aggregation vs Flower SecAgg+")
    for column in ("hubs_params", "plaintext CPU s (wall)", "FLUTE CPU s (wall), ratio", "Flower SecAgg+ CPU s (wall), ratio", "mask CPU ms/hub", "upload B/hub plain", "upload B/hub FLUTE"):
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(*row)
    Console().print(table)
    if args.json is not None:
        args.json.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
