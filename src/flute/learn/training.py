"""The round loop shared by the federated engine and the in-process estimator.

Where the local results come from is the caller's business (messages to hubs, or plain function
calls over partitions); the loop only aggregates, checks convergence and reports each round, so
federated and centralised training run literally the same arithmetic.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from flute.learn.aggregation import Aggregator, OptimiserState
from flute.learn.logistic import LocalFit, LogisticObjective, NewtonSums, RoundOutcome

LocalResults = Callable[[int, np.ndarray], Sequence[NewtonSums] | Sequence[LocalFit]]
RoundObserver = Callable[[int, RoundOutcome, OptimiserState], None]


@dataclass(frozen=True)
class TrainingTrace:
    """Final weights, rounds run (counting rounds before a resume), convergence and the objective
    per round run in this call."""

    weights: np.ndarray
    rounds: int
    converged: bool
    losses: tuple[float, ...]


def run_rounds(
    aggregator: Aggregator,
    objective: LogisticObjective,
    weights: np.ndarray,
    local_results: LocalResults,
    *,
    max_rounds: int,
    tolerance: float,
    state: OptimiserState | None = None,
    start_round: int = 0,
    on_round: RoundObserver | None = None,
) -> TrainingTrace:
    """Run rounds `start_round + 1 ..` until the step norm falls below `tolerance` or `max_rounds`.

    `local_results(round, weights)` returns the hubs' results in a fixed order (sorted by hub) so
    that a seeded run is bitwise reproducible. `on_round` sees every completed round (checkpoints,
    progress display).
    """
    state = aggregator.initial_state(weights) if state is None else state
    losses: list[float] = []
    converged = False
    round_number = start_round
    while round_number < max_rounds and not converged:
        round_number += 1
        outcome, state = aggregator.aggregate(weights, local_results(round_number, weights), objective, state)
        weights = outcome.weights
        losses.append(outcome.loss)
        converged = outcome.step_norm < tolerance
        if on_round is not None:
            on_round(round_number, outcome, state)
    return TrainingTrace(weights, round_number, converged, tuple(losses))
