"""Secure aggregation benchmark: one federated round, plaintext vs FLUTE's secure aggregation vs
Flower's SecAgg+ (flwr 1.41 `SecAggPlusWorkflow` + `secaggplus_mod`), all three over FLUTE's
in-process Grid (every message crosses Flower's protobuf wire encoding), same machine, one run.

A round: the coordinator sends the global weights of a PyTorch MLP with P parameters to every
hub; each hub trains it for ONE local epoch on its 500 patients (16 SGD steps of batch 32; model,
data and steps in benchmarks/secagg_training.py) and returns its trained weights (float64); the
coordinator obtains the SUM (plaintext: adds the updates it receives in the clear; FLUTE: the
engine's own `SecureSummer` and hub handlers of `flute.engine.hub_secagg`; Flower: its SecAgg+
workflow with FedAvg). Every arm runs the same deterministic training, checked: FLUTE's secure sum
equals the plaintext sum within the fixed-point resolution, Flower's FedAvg mean within its
quantisation step. Hubs run one after another in this process, so a round's time is the SUM of
the hubs' work plus the coordinator's. Times are CPU seconds of this process
(`time.process_time`; torch on one thread): on a shared machine wall-clock time moves with other
processes' load by several-fold, CPU time much less. Wall-clock seconds are reported alongside.
Plaintext and FLUTE rounds run `--repeats` times interleaved (at least TARGET_REPEATS at the
target, 10 hubs x 1e6) and the fastest of each is kept (once for rounds whose plaintext round
exceeds REPEAT_BELOW_S); Flower's round runs once. Upload
bytes are counted after the timed round (the counting serialises every reply once more).

Secure-aggregation graphs: the complete graph for 3 and 10 hubs (every pair masks; each hub's
secrets shared among all n hubs, t = n // 2 + 1), SecAgg+ with k = 8 neighbours at 100 hubs
(Flower: num_shares = 9); at 10 hubs also SecAgg+ with k = 4 (about log2 n; t = 3 of 5 holders),
reported as `*_k4` keys (docs/secure-aggregation.md says what each graph protects against).

Usage: .venv/bin/python benchmarks/secagg.py [--json PATH] [--max-params 1e6] [--repeats 3]
Keys per combination <h>h_<p> (e.g. 10h_1e6): overhead_ratio (FLUTE / plaintext round CPU time),
flower_secaggplus_ratio (Flower SecAgg+ / plaintext), mask_ms_per_hub (CPU ms of a hub's
masked-input stage), bytes_ratio (FLUTE upload per hub / plaintext upload per hub); see
benchmarks/README.md for the others.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import numpy as np
from secagg_training import LocalTraining

REPO_ROOT = Path(__file__).resolve().parent.parent
HUB_COUNTS = (3, 10, 100)
PARAM_COUNTS = (1_000, 100_000, 1_000_000)
SPARSE_NEIGHBOURS = 8
SPARSE_ABOVE_HUBS = 10
LOG_NEIGHBOURS_10_HUBS = 4
REPEAT_BELOW_S = 5.0
TARGET = (10, 1_000_000)  # the target cell (hubs, parameters) ...
TARGET_REPEATS = 5  # ... gets at least this many interleaved repeats: its ratio moves +-10 % with the machine's load
FLOWER_CLIPPING_RANGE = 8.0
FLOWER_TOLERANCE = 1e-4  # Flower quantises [-8, 8] to 2**22 levels: a step of 3.8e-6
os.environ["FLWR_TELEMETRY_ENABLED"] = "0"
os.environ["FLWR_DISABLE_UPDATE_CHECK"] = "1"


def label(hubs: int, params: int) -> str:
    return f"{hubs}h_1e{round(math.log10(params))}"


class BenchKind(str, Enum):
    PLAIN = "train.plain"
    SECURE = "train.secure"


def metered_grid(client_app, node_configs: list[dict]):  # type: ignore[no-untyped-def]
    """FLUTE's InProcessGrid keeping every reply's content, to count each hub's upload bytes
    (Flower wire encoding) after the timed round."""
    from flute.engine.embedded import EMBEDDED_RUN_ID, FIRST_HUB_NODE_ID
    from flute.engine.flower import Context, RecordDict, Run, record_to_bytes
    from flute.engine.grid import InProcessGrid, InProcessHub

    class MeteredGrid(InProcessGrid):
        replies: list

        def pull_messages(self, message_ids):  # type: ignore[no-untyped-def]
            replies = list(super().pull_messages(message_ids))
            self.replies.extend((r.metadata.src_node_id, r.metadata.message_type, r.content) for r in replies if r.has_content())
            return replies

        def upload_bytes_per_hub(self, message_type: str | None = None) -> float:
            """Mean bytes a hub sent, in all replies or in those to `message_type` only."""
            uploaded: dict[int, int] = {}
            for node, kind, content in self.replies:
                if message_type in (None, kind):
                    uploaded[node] = uploaded.get(node, 0) + len(record_to_bytes(content))
            return float(np.mean(list(uploaded.values())))

    hubs = [
        InProcessHub(FIRST_HUB_NODE_ID + index, Context(EMBEDDED_RUN_ID, FIRST_HUB_NODE_ID + index, config, RecordDict(), {}))
        for index, config in enumerate(node_configs)
    ]
    grid = MeteredGrid(client_app, hubs, Run.create_empty(EMBEDDED_RUN_ID))
    grid.replies = []
    return grid


@dataclass(frozen=True, order=True)
class RoundCost:
    """Ordered by CPU seconds, so `min` keeps the least disturbed repetition."""

    cpu_s: float
    wall_s: float
    upload_bytes_per_hub: float = 0.0
    vector_bytes_per_hub: float = 0.0  # the update itself: plaintext reply, or the masked-input reply
    mask_ms_per_hub: float = 0.0
    train_ms_per_hub: float = 0.0


@dataclass
class HubTimers:
    """CPU seconds the hubs spent training and in the masked-input stage, this round."""

    train: list[float]
    mask: list[float]

    @staticmethod
    def ms(seconds: list[float]) -> float:
        return 1000.0 * float(np.mean(seconds)) if seconds else 0.0


# -- plaintext and FLUTE ------------------------------------------------------------------------


def flute_apps(training: LocalTraining, spec):  # type: ignore[no-untyped-def]
    """The hubs' ClientApp: plaintext updates, or FLUTE's secure-aggregation handlers."""
    from flute.engine import hub_secagg
    from flute.engine.flower import Array, ArrayRecord, ClientApp, Message, RecordDict
    from flute.engine.pet_records import PetMessageKind, RoundAnnouncement, SecAggMessage

    app = ClientApp()
    timers = HubTimers([], [])

    def update(message: Message, context) -> np.ndarray:  # type: ignore[no-untyped-def]
        started = time.process_time()
        weights = training.train(int(context.node_config["hub-index"]), message.content.array_records["w"]["w"].numpy())
        timers.train.append(time.process_time() - started)
        return weights

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
                timers.mask.append(time.process_time() - started)
            return Message(reply, reply_to=message)

        return handler

    for kind in (PetMessageKind.SECAGG_SHARE, PetMessageKind.SECAGG_MASK, PetMessageKind.SECAGG_CONFIRM, PetMessageKind.SECAGG_UNMASK):
        app.query(kind.value.removeprefix("query."))(stage(kind))
    return app, timers


def default_neighbours(hubs: int) -> int | None:
    return SPARSE_NEIGHBOURS if hubs > SPARSE_ABOVE_HUBS else None


def flute_round(training: LocalTraining, secure: bool, neighbours: int | None = None) -> tuple[RoundCost, np.ndarray]:
    """One round and the sum it obtained; `neighbours` = SecAgg+ k (None: every pair masks)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from flute.engine.flower import Array, ArrayRecord, Message, RecordDict, coordinator_identity
    from flute.engine.hub_identity import ENROLMENT_KEY, MEMORY_IDENTITY_KEY, enrolment_json, parse_enrolment, private_hex, public_hex
    from flute.engine.hub_secagg import float_encoding
    from flute.engine.pet_records import PetMessageKind
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
    names = [f"hub-{index:03d}" for index in range(training.hubs)]
    keys = {name: Ed25519PrivateKey.generate() for name in names}
    enrolment = enrolment_json({name: public_hex(key) for name, key in keys.items()})
    # In-memory hubs of this process: the marker tells flute.engine.hub_identity to take the key
    # from the node config (never possible for a deployed hub).
    configs = [
        {"hub-name": name, "hub-index": index, ENROLMENT_KEY: enrolment, MEMORY_IDENTITY_KEY: private_hex(keys[name]), MEMORY_SOURCE_KEY: "benchmark"}
        for index, name in enumerate(names)
    ]
    app, timers = flute_apps(training, spec)
    grid = metered_grid(app, configs)
    nodes = {node: names[index] for index, node in enumerate(sorted(grid.get_node_ids()))}
    content = RecordDict({"w": ArrayRecord({"w": Array(training.initial_weights)})})

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
            total = summer.total(BenchKind.SECURE, content, nodes, "round-1", length=training.model_params, encoding=float_encoding(spec)).total
        else:
            answers = ask(BenchKind.PLAIN, {node: content for node in nodes}, "round-1", training.hubs)
            total = np.sum([record.array_records["u"]["u"].numpy() for record in answers.values()], axis=0)
        seconds, cpu = time.perf_counter() - started, time.process_time() - started_cpu
    upload = grid.upload_bytes_per_hub()
    vector = grid.upload_bytes_per_hub(PetMessageKind.SECAGG_MASK.value) if secure else upload
    cost = RoundCost(cpu, seconds, upload, vector, HubTimers.ms(timers.mask), HubTimers.ms(timers.train))
    return cost, total


# -- Flower's SecAgg+ -----------------------------------------------------------------------------


def flower_round(training: LocalTraining) -> tuple[RoundCost, np.ndarray]:
    """One fit round of Flower's DefaultWorkflow with SecAggPlusWorkflow over the same Grid, and
    the FedAvg mean it obtained."""
    from flwr.client import NumPyClient
    from flwr.client.mod import secaggplus_mod
    from flwr.clientapp import ClientApp
    from flwr.common import ndarrays_to_parameters
    from flwr.server import LegacyContext, ServerConfig
    from flwr.server.strategy import FedAvg
    from flwr.server.workflow import DefaultWorkflow, SecAggPlusWorkflow
    from flwr.server.workflow.constant import MAIN_PARAMS_RECORD

    from flute.engine.flower import Context, RecordDict, coordinator_identity
    from secagg_training import ROWS_PER_HUB

    class Hub(NumPyClient):
        def __init__(self, index: int) -> None:
            self.index = index

        def fit(self, parameters, config):  # type: ignore[no-untyped-def]
            return [training.train(self.index, parameters[0])], ROWS_PER_HUB, {}

    app = ClientApp(client_fn=lambda context: Hub(int(context.node_config["hub-index"])).to_client(), mods=[secaggplus_mod])
    grid = metered_grid(app, [{"hub-index": index} for index in range(training.hubs)])
    shares = SPARSE_NEIGHBOURS + 1 if training.hubs > SPARSE_ABOVE_HUBS else training.hubs
    strategy = FedAvg(
        fraction_fit=1.0, fraction_evaluate=0.0, min_fit_clients=training.hubs, min_available_clients=training.hubs,
        initial_parameters=ndarrays_to_parameters([training.initial_weights]),
    )
    context = LegacyContext(context=Context(1, 0, {}, RecordDict(), {}), config=ServerConfig(num_rounds=1), strategy=strategy)
    workflow = DefaultWorkflow(
        fit_workflow=SecAggPlusWorkflow(num_shares=shares, reconstruction_threshold=shares // 2 + 1, clipping_range=FLOWER_CLIPPING_RANGE)
    )
    with coordinator_identity(1):
        started, started_cpu = time.perf_counter(), time.process_time()
        workflow(grid, context)
        cost = RoundCost(time.process_time() - started_cpu, time.perf_counter() - started, grid.upload_bytes_per_hub())
    mean = next(iter(context.state.array_records[MAIN_PARAMS_RECORD].values())).numpy()
    return cost, mean


# -- the run ----------------------------------------------------------------------------------------


def check_sum(what: str, total: np.ndarray, reference: np.ndarray, tolerance: float) -> None:
    """Every arm must have computed the same round: a wrong sum would make its timing meaningless."""
    worst = float(np.max(np.abs(total - reference)))
    if not worst <= tolerance:
        raise AssertionError(f"{what}: differs from the plaintext round by up to {worst:.3g} (tolerance {tolerance:.3g})")


def best_rounds(training: LocalTraining, repeats: int, neighbours: int | None) -> tuple[RoundCost, RoundCost, np.ndarray]:
    """Plaintext and FLUTE rounds interleaved `repeats` times (once if the round is long): the
    fastest of each, checked that FLUTE's secure sum equals the plaintext sum, which is returned."""
    plain, reference = flute_round(training, secure=False)
    ours, total = flute_round(training, secure=True, neighbours=neighbours)
    resolution = training.hubs * 2.0**-24  # half a fixed-point step per hub, plus float64 summation
    check_sum(f"FLUTE secure sum, {training.hubs} hubs, k={neighbours}", total, reference, resolution)
    for _ in range(repeats - 1 if plain.cpu_s < REPEAT_BELOW_S else 0):
        plain = min(plain, flute_round(training, secure=False)[0])
        ours = min(ours, flute_round(training, secure=True, neighbours=neighbours)[0])
    return plain, ours, reference


def ratio_cell(cost: RoundCost, plain: RoundCost) -> str:
    return f"{cost.cpu_s:.3f} ({cost.wall_s:.3f}) {cost.cpu_s / plain.cpu_s:.2f}x"


def run_combination(params: int, hubs: int, repeats: int, figures: dict[str, float], rows: list[tuple[str, ...]]) -> None:
    """Plaintext, FLUTE (default graph; at 10 hubs also k = 4) and Flower SecAgg+ for one combination."""
    training = LocalTraining(params, hubs)
    key = label(hubs, params)
    repeats = max(repeats, TARGET_REPEATS) if (hubs, params) == TARGET else repeats
    plain, ours, reference = best_rounds(training, repeats, default_neighbours(hubs))
    flower, mean = flower_round(training)
    check_sum(f"Flower SecAgg+ FedAvg mean, {hubs} hubs", mean, reference / hubs, FLOWER_TOLERANCE)
    figures[f"model_params_{key}"] = training.model_params
    figures[f"train_ms_per_hub_{key}"] = plain.train_ms_per_hub
    figures[f"plaintext_round_cpu_s_{key}"] = plain.cpu_s
    figures[f"overhead_ratio_{key}"] = ours.cpu_s / plain.cpu_s
    figures[f"overhead_ratio_wall_{key}"] = ours.wall_s / plain.wall_s
    figures[f"flower_secaggplus_ratio_{key}"] = flower.cpu_s / plain.cpu_s
    figures[f"flower_secaggplus_ratio_wall_{key}"] = flower.wall_s / plain.wall_s
    figures[f"mask_ms_per_hub_{key}"] = ours.mask_ms_per_hub
    figures[f"bytes_ratio_{key}"] = ours.upload_bytes_per_hub / plain.upload_bytes_per_hub
    figures[f"bytes_per_hub_plaintext_{key}"] = plain.upload_bytes_per_hub
    figures[f"bytes_per_hub_flute_{key}"] = ours.upload_bytes_per_hub
    figures[f"key_material_bytes_per_hub_{key}"] = ours.upload_bytes_per_hub - ours.vector_bytes_per_hub
    figures[f"bytes_ratio_excl_key_material_{key}"] = ours.vector_bytes_per_hub / plain.upload_bytes_per_hub
    figures[f"bytes_per_hub_flower_{key}"] = flower.upload_bytes_per_hub
    rows.append(
        (key, f"{plain.train_ms_per_hub:.1f}", f"{plain.cpu_s:.3f} ({plain.wall_s:.3f})", ratio_cell(ours, plain), ratio_cell(flower, plain),
         f"{ours.mask_ms_per_hub:.1f}", f"{plain.upload_bytes_per_hub:,.0f}", f"{ours.upload_bytes_per_hub:,.0f} ({figures[f'bytes_ratio_{key}']:.4f}x)")
    )
    print(" | ".join(rows[-1]), flush=True)
    if hubs == SPARSE_ABOVE_HUBS:
        plain, sparse, _ = best_rounds(training, repeats, LOG_NEIGHBOURS_10_HUBS)
        figures[f"overhead_ratio_{key}_k4"] = sparse.cpu_s / plain.cpu_s
        figures[f"overhead_ratio_wall_{key}_k4"] = sparse.wall_s / plain.wall_s
        figures[f"mask_ms_per_hub_{key}_k4"] = sparse.mask_ms_per_hub
        rows.append((f"{key} k=4", f"{plain.train_ms_per_hub:.1f}", f"{plain.cpu_s:.3f} ({plain.wall_s:.3f})", ratio_cell(sparse, plain), "", f"{sparse.mask_ms_per_hub:.1f}", "", ""))
        print(" | ".join(rows[-1]), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, default=None, help="write the figures as a flat JSON object")
    parser.add_argument("--max-params", type=float, default=1e6, help="largest parameter count to run")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved plaintext/FLUTE rounds per combination (best kept)")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO_ROOT / "src"))
    import logging

    import torch
    from flwr.common.logger import FLOWER_LOGGER

    torch.set_num_threads(1)
    FLOWER_LOGGER.setLevel(logging.ERROR)
    flute_round(LocalTraining(1000, 3), secure=True)  # warm-up: imports, first key agreements
    figures: dict[str, float] = {}
    rows: list[tuple[str, ...]] = []
    for params in [p for p in PARAM_COUNTS if p <= args.max_params]:
        for hubs in HUB_COUNTS:
            run_combination(params, hubs, args.repeats, figures, rows)
    from rich.console import Console
    from rich.table import Table

    table = Table(title="One round (sequential hubs, one process, one local epoch per hub): plaintext vs FLUTE secure aggregation vs Flower SecAgg+")
    for column in ("hubs_params", "train CPU ms/hub", "plaintext CPU s (wall)", "FLUTE CPU s (wall), ratio", "Flower SecAgg+ CPU s (wall), ratio", "mask CPU ms/hub", "upload B/hub plain", "upload B/hub FLUTE"):
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(*row)
    Console(width=220).print(table)  # full columns even when piped
    if args.json is not None:
        args.json.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
