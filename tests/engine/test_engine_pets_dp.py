"""Record-level DP studies (URS-6/7/8, NF-HUF-1, NF-PIL-5): each hub's ledger is charged exactly
the accounted study cost before computing, an insufficient budget refuses the study with no
charge, and a reservation survives a crash."""

from __future__ import annotations

from pathlib import Path

import pytest

from flute.engine.apps import client_app, server_app
from flute.engine.embedded import HubBinding, run_embedded, study_run_config
from flute.engine.flower import RecordDict
from flute.engine.hub_privacy import MEMORY_LEDGER_KEY, PrivacyRefusal, reserve_study, spend_release, study_plan
from flute.engine.sources import InMemorySource
from flute.engine.spec import StudySpec
from flute.engine.workflow import TooFewHubs
from flute.hub.ledger import PrivacyLedger
from flute.hub.store import HubStore

from .engine_inputs import HUB_NAMES, make_spec, synthetic_hubs

BOUNDS = {"ageAtBiopsy": [40, 90], "psa": [0.1, 100], "prostateVolume": [10, 300], "pirads": [1, 5]}


def dp_spec() -> StudySpec:
    return make_spec(
        strategy={"name": "clipped_gradient", "clip_norm": 1.0},
        training={"rounds": 3, "learning_rate": 2.0},
        pets={"mode": "secagg_dp", "dp": {"target_epsilon": 1.0, "delta": 1e-5, "feature_bounds": BOUNDS}},
    )


def ledgers(tmp_path: Path, spec: StudySpec, epsilon: dict[str, float]) -> dict[str, str]:
    urls = {}
    for name in HUB_NAMES:
        urls[name] = f"sqlite:///{tmp_path / name}.sqlite3"
        store = HubStore.create(urls[name])
        PrivacyLedger(store.engine).set_budget(spec.study_id, name, epsilon.get(name, 1.0), 1e-5)
        store.close()
    return urls


def ledger_of(url: str) -> PrivacyLedger:
    return PrivacyLedger(HubStore.open(url).engine)


def run(spec: StudySpec, urls: dict[str, str]):  # type: ignore[no-untyped-def]
    hubs = [HubBinding(n, source=InMemorySource(t), ledger_url=urls[n]) for n, t in zip(HUB_NAMES, synthetic_hubs())]
    return run_embedded(server_app, client_app, hubs, study_run_config(spec))


@pytest.mark.slow
def test_dp_study_charges_every_hub_exactly_the_accounted_cost(tmp_path: Path) -> None:
    spec = dp_spec()
    urls = ledgers(tmp_path, spec, {})
    result = run(spec, urls)
    plan = study_plan(spec)
    assert plan.releases.count == 1 * 3 + 1 + 16  # final model: 3 rounds; census; preprocessing at z / 4
    assert plan.cost.epsilon <= 1.0 <= plan.cost.details["epsilon_rdp"]  # type: ignore[operator]
    assert result.final_model.rounds == 3
    for name in HUB_NAMES:
        status = ledger_of(urls[name]).budget(spec.study_id, name)
        assert status.epsilon_spent == pytest.approx(plan.cost.epsilon, abs=1e-12)
        assert status.delta_spent == pytest.approx(1e-5) and status.epsilon_reserved == 0.0


def test_insufficient_budget_refuses_before_any_computation(tmp_path: Path) -> None:
    spec = make_spec(**{**dp_spec().model_dump(), "federation": {"min_hubs": 3, "retries": 0, "timeout_s": 30}})
    urls = ledgers(tmp_path, spec, {"hub-b": 0.5})
    with pytest.raises(TooFewHubs, match="census"):
        run(spec, urls)
    assert ledger_of(urls["hub-b"]).recent_charges() == []  # nothing reserved, nothing computed
    assert ledger_of(urls["hub-b"]).budget(spec.study_id, "hub-b").epsilon_remaining == 0.5


def test_reservation_is_charged_until_committed_and_releases_are_capped(tmp_path: Path) -> None:
    spec = dp_spec()
    urls = ledgers(tmp_path, spec, {})
    node_config, state = {MEMORY_LEDGER_KEY: urls["hub-a"]}, RecordDict()
    reserve_study(spec, node_config, state, "run-1", "hub-a")
    # a hub that crashed here: the charge is reserved, i.e. counted against the budget
    status = ledger_of(urls["hub-a"]).budget(spec.study_id, "hub-a")
    assert status.epsilon_reserved == pytest.approx(study_plan(spec).cost.epsilon, abs=1e-12) and status.epsilon_spent == 0.0
    with pytest.raises(PrivacyRefusal, match="no privacy budget is reserved"):
        spend_release(spec, node_config, state, "another-run")
    for _ in range(study_plan(spec).releases.count):
        spend_release(spec, node_config, state, "run-1")
    assert ledger_of(urls["hub-a"]).budget(spec.study_id, "hub-a").epsilon_reserved == 0.0
    with pytest.raises(PrivacyRefusal, match="only 20 were charged"):
        spend_release(spec, node_config, state, "run-1")


def test_report_states_the_pets_epsilon_delta_and_what_they_cover() -> None:
    from flute.engine.validation import pets_statement

    spec = dp_spec()
    pets, epsilon, delta = pets_statement(spec)
    assert epsilon == study_plan(spec).cost.epsilon and delta == 1e-5
    assert "secure aggregation" in pets[0] and "unit: one patient's record" in pets[1] and "not DP" in pets[1]
    assert pets_statement(make_spec()) == ((), None, None)
