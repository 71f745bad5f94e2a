"""What a hub computes for a statistics request (F-PIL-16/18, NF-PIL-5, F-PIL-11).

The hub re-validates the request from the run config, reads its own study table and answers with
sums only (URS-1):
- 'none': exact sums, small cells suppressed by the hub's disclosure policy;
- 'dp':   the cost of the OpenDP plan is RESERVED in the hub's privacy ledger (study x dataset =
          the hub's name, budget set by the data owner) before any row is read; a refusal (`BudgetExceeded`,
          `BudgetNotSet`) propagates with the ledger's message and nothing is computed. The
          release is computed, small cells flagged (their noisy values kept for pooling), the reply built, and the reservation
          COMMITTED as the reply is handed over for sending (if anything fails before, it is
          released: nothing left the hub). A crash in between leaves it reserved, i.e. charged;
- 'he':   exact sums encrypted under the key holder's public context (which must not hold a
          secret key); no per-hub suppression is needed since nobody sees a hub's sums.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from flute.cohort.table import StudyTable
from flute.engine.flower import Context, RecordDict
from flute.engine.hub_steps import HubRefusal
from flute.engine.sources import HUB_HOME_KEY, MEMORY_SOURCE_KEY, hub_name, open_data_source
from flute.engine.stats_records import REQUEST_KEY, STATISTICS_MESSAGE, StatisticsIns, StatisticsRequest, StatisticsRes
from flute.privacy.dp_stats import exact_statistics, plan_dp_statistics, suppress_small_cells

if TYPE_CHECKING:
    from flute.hub.ledger import PrivacyLedger

#: The disclosure policy of a hub bound to an in-memory table (tests, benchmarks): the default.
IN_MEMORY_MIN_CELL_SIZE = 10


@dataclass(frozen=True)
class StatisticsHub:
    """What a hub answers from: its name, table, disclosure policy and ledger (None for an
    in-memory table, which therefore cannot release DP statistics)."""

    name: str
    table: StudyTable
    min_cell_size: int
    ledger: PrivacyLedger | None

    def columns(self) -> Mapping[str, np.ndarray]:
        return {name: self.table.features[:, index] for index, name in enumerate(self.table.columns)}


def request_from_run_config(run_config: Mapping[str, object]) -> StatisticsRequest:
    text = run_config.get(REQUEST_KEY)
    if not isinstance(text, str):
        raise HubRefusal(f"run config lacks {REQUEST_KEY!r} (the statistics request as JSON)")
    return StatisticsRequest.from_json(text)


@contextmanager
def open_statistics_hub(node_config: Mapping[str, object], request: StatisticsRequest) -> Iterator[StatisticsHub]:
    """The hub's table, policy and ledger for one message (the store is closed afterwards)."""
    name = hub_name(node_config)
    home = node_config.get(HUB_HOME_KEY)
    if MEMORY_SOURCE_KEY in node_config or not isinstance(home, str):
        with open_data_source(node_config) as source:
            table = source.study_table(request.variables, included_only=request.included_only)
        yield StatisticsHub(name, table, IN_MEMORY_MIN_CELL_SIZE, None)
        return
    from flute.hub.consent import consent_guard
    from flute.hub.disclosure import load_policy
    from flute.hub.ledger import PrivacyLedger
    from flute.hub.node import open_hub

    policy = load_policy(Path(home))
    with open_hub(Path(home)) as hub:
        table = hub.store.study_table(request.variables, included_only=request.included_only)
        # F-SRS-9 as for study steps, before anything is computed; the cohort size lets the misuse
        # rules see the same query repeated on a cohort a few records apart (NF-PIL-10).
        consent_guard(Path(home), request.study, request.variables, STATISTICS_MESSAGE, cohort_size=table.n)
        yield StatisticsHub(name, table, policy.min_cell_size, PrivacyLedger(hub.store.engine))


def answer_statistics(request: StatisticsRequest, ins: StatisticsIns, hub: StatisticsHub) -> RecordDict:
    """The reply record of this hub (see the module docstring for each PET)."""
    query = request.query()
    if request.pet == "he":
        if not ins.public_context:
            raise HubRefusal("the request's PET is 'he' but the message carries no public CKKS context")
        from flute.privacy.he import encrypt

        exact = exact_statistics(query, hub.columns())
        return StatisticsRes(hub.name, hub.min_cell_size, ciphertext=encrypt(ins.public_context, exact.values)).to_record()
    if request.pet == "none":
        vector = suppress_small_cells(exact_statistics(query, hub.columns()), hub.min_cell_size)
        return StatisticsRes(hub.name, hub.min_cell_size, vector.values, vector.suppressed).to_record()
    if hub.ledger is None:
        raise HubRefusal("DP statistics are charged to the hub's privacy ledger: bind this hub by its hub home")
    assert request.epsilon is not None  # checked by StatisticsRequest
    plan = plan_dp_statistics(query, request.epsilon)
    operation = f"statistics {request.kind} of {','.join(request.variables)} (OpenDP, epsilon {request.epsilon:g})"
    reservation = hub.ledger.reserve(request.study, hub.name, plan.cost, operation)
    try:
        vector = suppress_small_cells(plan.release(hub.columns()), hub.min_cell_size, withhold=False)
        record = StatisticsRes(hub.name, hub.min_cell_size, vector.values, vector.suppressed, cost=plan.cost).to_record()
    except BaseException:
        hub.ledger.release(reservation)
        raise
    hub.ledger.commit(reservation)
    return record


def handle_statistics(content: RecordDict, context: Context) -> RecordDict:
    """The ClientApp's handler body for `query.statistics`."""
    request = request_from_run_config(dict(context.run_config))
    ins = StatisticsIns.from_record(content)
    with open_statistics_hub(context.node_config, request) as hub:
        return answer_statistics(request, ins, hub)
