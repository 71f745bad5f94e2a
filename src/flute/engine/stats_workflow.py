"""Federated descriptive statistics: the coordinator's side (F-PIL-16/18, NF-PIL-5, F-SRS-4).

One round: every hub gets `query.statistics` and answers with its sums (`flute.engine.stats_steps`);
the coordinator reports per-hub and pooled statistics. What each PET guarantees:

- 'none': exact sums in the clear; only the hubs' small-cell suppression protects them.
- 'dp':   every hub releases OpenDP sums at the requested epsilon (local DP per hub, charged to
          its ledger). Pooled = the sum of the releases (post-processing): each hub's records keep
          (epsilon, 0)-DP per record against everyone, the coordinator included; the pooled noise
          is the sum of every hub's noise.
- 'he':   the coordinator is the KEY HOLDER (`flute.privacy.he.KeyHolder`); hubs encrypt their
          exact sums under its public context, the AGGREGATOR step adds ciphertexts holding the
          public context only, and the key holder decrypts the pooled sums alone. No hub's sums
          are seen by anyone unless aggregator and key holder collude (in the embedded engine
          they share a process). The pooled sums are exact (no DP): small pooled cells are
          suppressed against the strictest minimum cell size the answering hubs state, and at
          least two hubs must answer, or the 'pooled' sums would be one hub's own.

A hub that errs (refused budget, no consent, ...) is reported with its reason and left out; fewer
than `min_hubs` answers stop the run with `StatisticsFailed` listing every hub's reason.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Sequence

import numpy as np

from flute.engine.flower import ConfigRecord, Context, Grid, Message, ServerApp
from flute.engine.stats_records import REQUEST_KEY, STATISTICS_MESSAGE, StatisticsIns, StatisticsRequest, StatisticsRes
from flute.privacy.dp.cost import DpCost
from flute.privacy.dp_stats import StatisticsVector, VariableEstimate, estimates, suppress_small_cells

if TYPE_CHECKING:
    from flute.engine.embedded import HubBinding

STATE_RESULT: Final = "flute.statistics-result"
HE_MIN_HUBS: Final = 2
DEFAULT_TIMEOUT_S: Final = 300.0
UNIT_OF_PRIVACY: Final = "one patient record (added or removed) at one hub"


class StatisticsFailed(RuntimeError):
    """Too few hubs answered; the message gives every hub's reason."""


@dataclass(frozen=True)
class HubStatistics:
    """One hub's part: its estimates (none for 'he': nobody sees them), the DP cost its ledger
    charged ('dp'), and its minimum cell size."""

    hub: str
    min_cell_size: int
    estimates: tuple[VariableEstimate, ...]
    cost: DpCost | None

    def to_json(self) -> dict[str, Any]:
        cost = None if self.cost is None else {"epsilon": self.cost.epsilon, "delta": self.cost.delta, "unit": self.cost.unit, "mechanism": self.cost.mechanism}
        return {"hub": self.hub, "min_cell_size": self.min_cell_size, "estimates": [e.to_json() for e in self.estimates], "cost": cost}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> HubStatistics:
        cost = DpCost(**data["cost"]) if data["cost"] else None
        return cls(data["hub"], data["min_cell_size"], tuple(VariableEstimate.from_json(e) for e in data["estimates"]), cost)


@dataclass(frozen=True)
class StatisticsResult:
    request: StatisticsRequest
    hubs: tuple[HubStatistics, ...]
    pooled: tuple[VariableEstimate, ...]
    pooled_min_cell_size: int
    failures: tuple[tuple[str, str], ...]

    def guarantee(self) -> str:
        """What protects the released numbers, in one sentence."""
        if self.request.pet == "dp":
            epsilons = ", ".join(f"{h.hub} epsilon={h.cost.epsilon:.6g}, delta={h.cost.delta:g}" for h in self.hubs if h.cost)
            return f"local DP at each hub (OpenDP, pure epsilon-DP) per {UNIT_OF_PRIVACY}: {epsilons}; pooled = sum of the releases (post-processing, same guarantee)"
        if self.request.pet == "he":
            return (
                "CKKS homomorphic encryption: per-hub sums hidden unless aggregator and key holder collude; pooled sums exact (no DP), "
                f"cells below {self.pooled_min_cell_size} suppressed"
            )
        return "no PET: exact per-hub sums in the clear, cells below each hub's minimum cell size suppressed"

    def to_json(self) -> dict[str, Any]:
        return {
            "request": json.loads(self.request.to_json()),
            "guarantee": self.guarantee(),
            "unit_of_privacy": UNIT_OF_PRIVACY,
            "hubs": [h.to_json() for h in self.hubs],
            "pooled": [e.to_json() for e in self.pooled],
            "pooled_min_cell_size": self.pooled_min_cell_size,
            "failures": [{"hub": hub, "reason": reason} for hub, reason in self.failures],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StatisticsResult:
        return cls(
            StatisticsRequest.from_json(json.dumps(data["request"])),
            tuple(HubStatistics.from_json(h) for h in data["hubs"]),
            tuple(VariableEstimate.from_json(e) for e in data["pooled"]),
            data["pooled_min_cell_size"],
            tuple((f["hub"], f["reason"]) for f in data["failures"]),
        )


def aggregate_encrypted(public_context: bytes, ciphertexts: list[bytes]) -> bytes:
    """The aggregator's step: it gets the PUBLIC context and ciphertexts only."""
    from flute.privacy.he import add_encrypted

    return add_encrypted(public_context, ciphertexts)


class StatisticsCoordinator:
    """Runs one statistics request over a Grid; `run()` returns the StatisticsResult."""

    def __init__(self, grid: Grid, request: StatisticsRequest, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.grid, self.request, self.timeout_s = grid, request, timeout_s
        self.query = request.query()

    def run(self) -> StatisticsResult:
        key_holder = None
        ins = StatisticsIns()
        if self.request.pet == "he":
            from flute.privacy.he import KeyHolder

            key_holder = KeyHolder()
            ins = StatisticsIns(key_holder.public_context())
        replies, failures = self._ask(ins)
        required = max(self.request.min_hubs, HE_MIN_HUBS if self.request.pet == "he" else 1)
        if len(replies) < required:
            reasons = "".join(f"\n  - {hub}: {reason}" for hub, reason in failures)
            raise StatisticsFailed(f"{len(replies)} hub(s) answered the statistics request, at least {required} are needed{reasons}")
        pooled_cell = max(reply.min_cell_size for reply in replies)
        if key_holder is not None:
            total = aggregate_encrypted(ins.public_context, [reply.ciphertext for reply in replies])
            decrypted = key_holder.decrypt(total, self.query.size)
            # Counts are integers: rounding removes the CKKS error (~1e-9) from them.
            decrypted = np.where(self.query.count_mask(), np.round(decrypted), decrypted)
            exact = StatisticsVector(self.query, decrypted, np.zeros(self.query.size, dtype=bool))
            hubs = tuple(HubStatistics(r.hub, r.min_cell_size, (), None) for r in replies)
            pooled = suppress_small_cells(exact, pooled_cell)
        else:
            vectors = [StatisticsVector(self.query, r.values, r.suppressed) for r in replies]  # type: ignore[arg-type]
            hubs = tuple(HubStatistics(r.hub, r.min_cell_size, estimates(v), r.cost) for r, v in zip(replies, vectors))
            total = vectors[0]
            for vector in vectors[1:]:
                total = total + vector
            if self.request.pet == "dp":
                # Flagged DP values are noisy, not raw: the pooled sum includes them all.
                total = StatisticsVector(self.query, total.values, np.zeros(self.query.size, dtype=bool))
            # 'none': a cell withheld at any hub stays flagged (its pooled sum would be partial).
            pooled = suppress_small_cells(total, pooled_cell)
        return StatisticsResult(self.request, hubs, estimates(pooled), pooled_cell, tuple(failures))

    def _ask(self, ins: StatisticsIns) -> tuple[list[StatisticsRes], list[tuple[str, str]]]:
        nodes = sorted(self.grid.get_node_ids())
        content = ins.to_record()
        messages = [Message(content, node, STATISTICS_MESSAGE, group_id=f"statistics/{self.request.study}") for node in nodes]
        replies, failures, answered = [], [], set()
        for reply in self.grid.send_and_receive(messages, timeout=self.timeout_s):
            node = reply.metadata.src_node_id
            answered.add(node)
            if reply.has_error():
                failures.append((f"node {node}", _reason(reply.error.reason)))
            else:
                replies.append(StatisticsRes.from_record(reply.content, self.query.size))
        failures += [(f"node {node}", f"no answer within {self.timeout_s:g}s") for node in nodes if node not in answered]
        replies.sort(key=lambda r: r.hub)
        names = [r.hub for r in replies]
        if len(set(names)) != len(names):
            raise StatisticsFailed(f"hubs must have distinct names, got {names}")
        return replies, failures


def _reason(flower_reason: str) -> str:
    """The hub's exception message out of Flower's "<class 'X'>:<'message'>" error reason."""
    head, _, message = flower_reason.partition(":<'")
    kind = head.removeprefix("<class '").removesuffix("'>").rsplit(".", 1)[-1]
    return f"{kind}: {message.removesuffix(chr(39) + '>')}" if message else flower_reason


# -- the ServerApp ------------------------------------------------------------------------------

stats_server_app = ServerApp()


@stats_server_app.main()
def coordinate_statistics(grid: Grid, context: Context) -> None:
    """Run the request in the run config; leave the result (JSON) in the context state."""
    text = context.run_config.get(REQUEST_KEY)
    if not isinstance(text, str):
        raise ValueError(f"run config lacks {REQUEST_KEY!r} (the statistics request as JSON)")
    result = StatisticsCoordinator(grid, StatisticsRequest.from_json(text)).run()
    context.state[STATE_RESULT] = ConfigRecord({"json": json.dumps(result.to_json())})


def run_statistics_embedded(request: StatisticsRequest, hubs: Sequence[HubBinding]) -> StatisticsResult:
    """Run `request` over in-process hubs (`flute.engine.embedded.HubBinding`s)."""
    from flute.engine.apps import client_app
    from flute.engine.embedded import serve_embedded

    state = serve_embedded(stats_server_app, client_app, hubs, {REQUEST_KEY: request.to_json()})
    return StatisticsResult.from_json(json.loads(str(state.config_records[STATE_RESULT]["json"])))
