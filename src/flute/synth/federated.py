"""The hubs' side of training a synthetic-data generator: additive count vectors, each hub's
share of the Gaussian noise, and their secure sum (F-IMSD-13, URS-1/2, F-PIL-11, NF-HUF-1).

What leaves a hub: one masked vector per release (secure aggregation), i.e. its marginal counts
plus its noise share N(0, sigma^2 / k) (`NoisePlan.distributed`). The coordinator learns only the
sum, which carries noise of std >= sigma under the plan's trust assumption. Without DP (the
non-DP mode), the sum of the exact counts is revealed: only for data owners who accept that.

This module runs every hub's step in ONE process (`flute.privacy.secagg.run_secure_sum` carries
the protocol messages in memory): the hub homes are opened locally, as the embedded engine does.
A deployment carries the same steps as engine messages (see the report's open items).
Hubs bound to a hub home charge their PrivacyLedger (dataset = the hub's name) BEFORE any count
is computed and commit once their releases are handed over; in-memory hubs (benchmarks, tests)
have no ledger and are not metered.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from flute.privacy.dp.cost import DpCost
from flute.privacy.dp.mechanisms import NoisePlan, NoiseSource, gaussian_noise_share
from flute.synth.schema import CENTRE, CSPCA, TableSchema

if TYPE_CHECKING:
    import pandas as pd

    from flute.cohort.table import StudyTable
    from flute.hub.ledger import PrivacyLedger, Reservation

Marginal = tuple[int, ...]
SYNTH_OPERATION = "synth.train"


@dataclass(frozen=True)
class SynthHub:
    """A hub's typed rows (the schema's columns) and its ledger (None: in-memory, unmetered)."""

    name: str
    frame: pd.DataFrame
    ledger: PrivacyLedger | None = None


def frame_of_table(name: str, table: StudyTable) -> pd.DataFrame:
    """A hub's StudyTable as typed rows: its variables, its centre (the hub's name), csPCa."""
    import pandas as pd

    frame = pd.DataFrame({column: table.features[:, index] for index, column in enumerate(table.columns)})
    frame[CENTRE] = name
    frame[CSPCA] = table.labels.astype(np.int64)
    return frame


@contextmanager
def open_hub_homes(homes: Sequence[Path], variables: Sequence[str], study: str) -> Iterator[list[SynthHub]]:
    """The included, labelled rows of every hub home, with the hub's ledger (stores closed after).
    A hub whose data owner governs consent must have granted `study` these variables (F-SRS-9)."""
    from flute.hub.consent import consent_guard
    from flute.hub.ledger import PrivacyLedger
    from flute.hub.node import open_hub

    with ExitStack() as stack:
        hubs = []
        for home in homes:
            hub = stack.enter_context(open_hub(Path(home)))
            table = hub.store.study_table(list(variables), included_only=True)
            consent_guard(Path(home), study, list(variables), SYNTH_OPERATION, cohort_size=table.n)
            hubs.append(SynthHub(hub.config.name, frame_of_table(hub.config.name, table), PrivacyLedger(hub.store.engine)))
        names = [hub.name for hub in hubs]
        if len(set(names)) != len(names):
            raise ValueError(f"hub names must be distinct, got {names}")
        yield hubs


def marginal_counts(codes: np.ndarray, cardinalities: Sequence[int], marginals: Sequence[Marginal]) -> np.ndarray:
    """The concatenated, flattened count tables of `marginals` over a code matrix."""
    parts = []
    for marginal in marginals:
        shape = tuple(cardinalities[c] for c in marginal)
        flat = np.ravel_multi_index(tuple(codes[:, c] for c in marginal), shape) if len(codes) else np.empty(0, dtype=np.int64)
        parts.append(np.bincount(flat, minlength=int(np.prod(shape))).astype(np.float64))
    return np.concatenate(parts)


def split_counts(vector: np.ndarray, cardinalities: Sequence[int], marginals: Sequence[Marginal]) -> dict[Marginal, np.ndarray]:
    """The count tables of a concatenated vector, by marginal."""
    tables, start = {}, 0
    for marginal in marginals:
        shape = tuple(cardinalities[c] for c in marginal)
        size = int(np.prod(shape))
        tables[marginal] = vector[start : start + size].reshape(shape)
        start += size
    return tables


def secure_marginal_sum(
    hubs: Sequence[SynthHub], schema: TableSchema, marginals: Sequence[Marginal], sigma: float | None, plan: NoisePlan,
    round_id: str, noise: Callable[[], NoiseSource] = NoiseSource.secure,
) -> dict[Marginal, np.ndarray]:
    """The pooled count tables: every hub's counts plus (with `sigma`) its noise share, summed
    with secure aggregation when there are >= 2 hubs."""
    from flute.privacy.secagg import SecAggConfig, run_secure_sum

    inputs = {}
    for index, hub in enumerate(hubs, start=1):
        counts = marginal_counts(schema.discretise(hub.frame), schema.cardinalities, marginals)
        if sigma is not None:
            counts = counts + gaussian_noise_share(counts.shape, sigma, plan, noise())
        inputs[index] = counts
    if len(inputs) == 1:
        total = inputs[1]
    else:
        config = SecAggConfig(round_id, tuple(inputs), len(next(iter(inputs.values()))), threshold=max(2, len(inputs) // 2 + 1))
        total = run_secure_sum(inputs, config)
    if sigma is None:
        total = np.round(total)  # exact counts: remove the fixed-point encoding's rounding
    return split_counts(total, schema.cardinalities, marginals)


@contextmanager
def charged(hubs: Sequence[SynthHub], study: str, cost: DpCost, operation: str) -> Iterator[None]:
    """Reserve `cost` at every metered hub before anything is computed (a refusal at any hub
    refunds the others and propagates with the ledger's message); commit when the block's
    releases are done, refund if it fails."""
    reservations: list[tuple[PrivacyLedger, Reservation]] = []
    try:
        for hub in hubs:
            if hub.ledger is not None:
                reservations.append((hub.ledger, hub.ledger.reserve(study, hub.name, cost, operation)))
        yield
    except BaseException:
        for ledger, reservation in reservations:
            ledger.release(reservation)
        raise
    for ledger, reservation in reservations:
        ledger.commit(reservation)
