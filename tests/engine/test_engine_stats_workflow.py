"""Federated statistics through the engine (flute.engine.stats_workflow / stats_steps): pooled
results equal the centralised ones, DP queries are charged to each hub's ledger before anything
is computed, refusals are clear, concurrent queries never over-spend (F-PIL-16/18, NF-PIL-5,
F-PIL-11, F-SRS-4)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from flute.cohort.table import StudyTable
from flute.engine.embedded import HubBinding
from flute.engine.sources import HUB_HOME_KEY, HUB_NAME_KEY, InMemorySource
from flute.engine.stats_records import StatisticsIns, StatisticsRequest
from flute.engine.stats_steps import answer_statistics, open_statistics_hub
from flute.engine.stats_workflow import StatisticsFailed, run_statistics_embedded
from flute.hub.disclosure import DisclosurePolicy, load_policy, save_policy
from flute.hub.ledger import BudgetExceeded, PrivacyLedger
from flute.privacy import dp_stats
from flute.engine.stats_variables import statistics_query
from flute.privacy.dp_stats import estimates, exact_statistics, plan_dp_statistics
from flute.hub.node import init_hub, open_hub
from simulated_hubs import simulated_hub_homes
from hub_ledgers import charges, set_budgets

VARIABLES = ("psa", "pirads", "ageAtBiopsy")
RNG = np.random.default_rng(11)


def _memory_hub(name: str, n: int) -> HubBinding:
    features = np.c_[RNG.lognormal(1.8, 0.6, n), RNG.integers(1, 6, n), RNG.normal(66, 7, n)]
    return HubBinding(name, source=InMemorySource(StudyTable(VARIABLES, features, RNG.integers(0, 2, n))))


def _pooled_columns(hubs: list[HubBinding]) -> dict[str, np.ndarray]:
    tables = [hub.source.table for hub in hubs]  # type: ignore[union-attr]
    return {name: np.concatenate([t.features[:, i] for t in tables]) for i, name in enumerate(VARIABLES)}


def _close(value: float | None, expected: float | None) -> bool:
    return value is None and expected is None or value == pytest.approx(expected, rel=1e-6)


@pytest.fixture(scope="module")
def memory_hubs() -> list[HubBinding]:
    return [_memory_hub(name, n) for name, n in (("a", 300), ("b", 800), ("c", 1500))]


@pytest.mark.parametrize("pet", ["none", "he"])
@pytest.mark.parametrize("kind", ["variance", "histogram", "quantiles"])
def test_pooled_statistics_equal_the_centralised_ones(memory_hubs: list[HubBinding], pet: str, kind: str) -> None:
    result = run_statistics_embedded(StatisticsRequest("s", VARIABLES, kind, pet), memory_hubs)  # type: ignore[arg-type]
    central = estimates(exact_statistics(statistics_query(list(VARIABLES), kind), _pooled_columns(memory_hubs)))
    assert [h.hub for h in result.hubs] == ["a", "b", "c"] and not result.failures
    for pooled, truth in zip(result.pooled, central):
        assert pooled.n == truth.n
        assert _close(pooled.mean, truth.mean) and _close(pooled.variance, truth.variance)
        assert [c for _, c in pooled.histogram] == [c for _, c in truth.histogram] or pet == "none"
        np.testing.assert_allclose([v for _, v in pooled.quantiles], [v for _, v in truth.quantiles], rtol=1e-6)
    if pet == "he":
        assert all(not hub.estimates for hub in result.hubs)  # nobody sees a hub's own sums
    elif kind == "histogram":  # exact cells below 10 at some hub are withheld there, so unknown when pooled
        query = statistics_query(list(VARIABLES), kind)
        per_hub = [estimates(exact_statistics(query, {n: hub.source.table.features[:, i] for i, n in enumerate(VARIABLES)})) for hub in memory_hubs]  # type: ignore[union-attr]
        for index, (pooled, truth) in enumerate(zip(result.pooled, central)):
            small = [any(hub[index].histogram[b][1] < 10 for hub in per_hub) for b in range(len(truth.histogram))]  # type: ignore[operator]
            assert [c for _, c in pooled.histogram] == [None if s else c for s, (_, c) in zip(small, truth.histogram)]
            assert any(small) == ("bins" in pooled.suppressed)


def test_he_needs_two_hubs_and_dp_needs_a_ledger(memory_hubs: list[HubBinding]) -> None:
    with pytest.raises(StatisticsFailed, match="at least 2 are needed"):
        run_statistics_embedded(StatisticsRequest("s", ("psa",), "mean", "he"), memory_hubs[:1])
    with pytest.raises(StatisticsFailed, match="charged to the hub's privacy ledger"):
        run_statistics_embedded(StatisticsRequest("s", ("psa",), "mean", "dp", 1.0), memory_hubs)


# -- hub homes (simulated pilot sites imported as FHIR) -----------------------------------------


@pytest.fixture(scope="module")
def hub_homes(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return simulated_hub_homes(tmp_path_factory.mktemp("stats-pilot"), seed=5)


def _bindings(homes: list[Path]) -> list[HubBinding]:
    return [HubBinding(home.name, home=home) for home in homes]


def test_dp_query_charges_each_hub_its_cost_and_commits(hub_homes: list[Path]) -> None:
    set_budgets(hub_homes, "dp-study", 2.0, delta=1e-6)
    request = StatisticsRequest("dp-study", ("psa", "pirads"), "mean", "dp", 1.5)
    result = run_statistics_embedded(request, _bindings(hub_homes))
    cost = plan_dp_statistics(request.query(), 1.5).cost
    assert [h.cost.epsilon for h in result.hubs] == [cost.epsilon] * 3  # type: ignore[union-attr]
    for home in hub_homes:
        assert charges(home, "dp-study") == [(pytest.approx(cost.epsilon), "committed")]
    assert "per one patient record" in result.guarantee() and "epsilon=1.5" in result.guarantee()


def test_refused_budget_computes_nothing_and_says_why(hub_homes: list[Path], monkeypatch: pytest.MonkeyPatch) -> None:
    set_budgets(hub_homes, "small-budget", 0.5, delta=1e-6)
    releases: list[int] = []
    real_release = dp_stats.DpStatisticsPlan.release
    monkeypatch.setattr(dp_stats.DpStatisticsPlan, "release", lambda self, columns: releases.append(1) or real_release(self, columns))
    request = StatisticsRequest("small-budget", ("psa",), "variance", "dp", 1.0)
    with pytest.raises(StatisticsFailed, match="BudgetExceeded: privacy budget of study 'small-budget' on dataset") as refused:
        run_statistics_embedded(request, _bindings(hub_homes))
    assert "remaining epsilon=0.5" in str(refused.value) and "flute hub budget set small-budget" in str(refused.value)
    assert releases == []  # nothing was computed at any hub
    assert all(charges(home, "small-budget") == [] for home in hub_homes)


def test_no_budget_set_is_refused(hub_homes: list[Path]) -> None:
    with pytest.raises(StatisticsFailed, match="no privacy budget is set for study 'unknown-study'"):
        run_statistics_embedded(StatisticsRequest("unknown-study", ("psa",), "count", "dp", 0.1), _bindings(hub_homes))


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def racing_home(request: pytest.FixtureRequest, hub_homes: list[Path], tmp_path: Path) -> Path:
    """The first pilot hub on SQLite, or the same site imported into a real PostgreSQL store."""
    if request.param == "sqlite":
        return hub_homes[0]
    home = tmp_path / hub_homes[0].name
    init_hub(home, home.name, request.getfixturevalue("postgres_server").create_database())
    with open_hub(home) as hub:
        hub.import_paths([hub_homes[0].parent.parent / "fhir" / home.name])
    return home


def test_concurrent_queries_never_overspend(racing_home: Path) -> None:
    """12 queries race for a budget that fits exactly 4 of them on one hub."""
    home = racing_home
    request = StatisticsRequest("race", ("pirads",), "histogram", "dp", 0.25)
    set_budgets([home], "race", 4 * plan_dp_statistics(request.query(), 0.25).cost.epsilon, delta=1e-6)
    node_config = {HUB_HOME_KEY: str(home), HUB_NAME_KEY: home.name}

    def query(_index: int) -> str:
        try:
            with open_statistics_hub(node_config, request) as hub:
                answer_statistics(request, StatisticsIns(), hub)
        except BudgetExceeded:
            return "refused"
        return "answered"

    with ThreadPoolExecutor(max_workers=6) as pool:
        outcomes = list(pool.map(query, range(12)))
    assert outcomes.count("answered") == 4 and outcomes.count("refused") == 8
    with open_hub(home) as hub:
        status = PrivacyLedger(hub.store.engine).budget("race", home.name)
    assert status.epsilon_remaining >= 0 and status.epsilon_reserved == 0
    assert len(charges(home, "race")) == 4


def test_hub_policy_sets_the_minimum_cell_size(hub_homes: list[Path]) -> None:
    home = hub_homes[1]
    assert load_policy(home) == DisclosurePolicy(10)
    save_policy(home, DisclosurePolicy(1000))
    try:
        result = run_statistics_embedded(StatisticsRequest("none-study", ("pirads",), "count", "none"), _bindings(hub_homes))
    finally:
        save_policy(home, DisclosurePolicy(10))
    by_hub = {h.hub: h for h in result.hubs}
    assert by_hub[home.name].min_cell_size == 1000 and by_hub[home.name].estimates[0].n is None
    assert result.pooled[0].n is None and result.pooled[0].suppressed == ("n",)  # partial pooled counts are not shown
