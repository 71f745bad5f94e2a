"""The study spec admits only vetted algorithms and known options (F-PIL-22/23), says clearly
why it refuses, round-trips through JSON and TOML, and hubs enforce it on their side."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from flute.engine.apps import SPEC_KEY, client_app
from flute.engine.embedded import EMBEDDED_RUN_ID
from flute.engine.flower import Context, Message, RecordDict, Run, coordinator_identity
from flute.engine.grid import InProcessGrid, InProcessHub
from flute.engine.hub_steps import HubRefusal, local_fit, newton_step
from flute.engine.records import MessageKind, Preprocessing, RowSelection, StatsIns, TrainIns
from flute.engine.sources import InMemorySource, registered_sources
from flute.engine.spec import SpecError, StudySpec
from flute.engine.workflow import StudyFailed

from .engine_inputs import make_spec, run_study, synthetic_hubs

BASE = make_spec().model_dump(mode="json")


def refusal(**changes: object) -> list[str]:
    data = {**BASE, **changes}
    with pytest.raises(SpecError) as caught:
        StudySpec.from_mapping(data)
    return caught.value.reasons


def test_unvetted_model_and_strategy_are_refused_naming_the_vetted_ones() -> None:
    reasons = refusal(model={"name": "xgboost"}, strategy={"name": "fedsgd"})
    assert any("model: 'xgboost' is not a vetted algorithm; choose one of ['logistic_regression', 'decision_tree', 'random_forest', 'gbdt', 'linear_svm', 'mlp']" in r for r in reasons)
    assert any("strategy: 'fedsgd' is not a vetted algorithm" in r and "'fedprox'" in r for r in reasons)


def test_unknown_options_are_refused_at_every_level() -> None:
    reasons = refusal(shell="rm -rf /", model={"name": "logistic_regression", "max_depth": 3}, training={"rounds": 5, "batch": 8})
    assert any(r.endswith("shell: unknown option (not part of the vetted spec; remove it)") for r in reasons)
    assert any("model.logistic_regression.max_depth: unknown option" in r for r in reasons)
    assert any("training.batch: unknown option" in r for r in reasons)


def test_options_are_validated_per_model_and_strategy() -> None:
    assert any("model.logistic_regression.l2" in r for r in refusal(model={"name": "logistic_regression", "l2": -1}))
    assert any("strategy.fedprox.mu" in r for r in refusal(strategy={"name": "fedprox"}))
    assert any("unknown study variables ['gleason']" in r for r in refusal(cohort={"variables": ["psa", "gleason"]}))
    assert any("not in cohort.variables" in r for r in refusal(preprocessing={"log_transform": ["dre"]}))
    assert any("cv_folds must be 0" in r for r in refusal(evaluation={"cv_folds": 1}))


def test_spec_round_trips_through_json_and_toml(tmp_path: Path) -> None:
    spec = make_spec(strategy={"name": "fedadam", "server_learning_rate": 0.05})
    for suffix in (".json", ".toml"):
        path = tmp_path / f"study{suffix}"
        spec.save(path)
        assert StudySpec.load(path) == spec
    (tmp_path / "bad.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(SpecError, match="not valid JSON"):
        StudySpec.load(tmp_path / "bad.json")


def test_hub_refuses_steps_the_spec_does_not_allow() -> None:
    table = synthetic_hubs()[0]
    ins = TrainIns(1, np.zeros(5), RowSelection(), Preprocessing(np.zeros(4), np.ones(4)), (1.0, 1.0))
    with pytest.raises(HubRefusal, match="local training requested, but the study's strategy is 'newton'"):
        local_fit(make_spec(), table, ins)
    with pytest.raises(HubRefusal, match="strategy is 'fedavg'"):
        newton_step(make_spec(strategy={"name": "fedavg"}), table, ins)
    weighted = TrainIns(1, np.zeros(5), RowSelection(), Preprocessing(np.zeros(4), np.ones(4)), (0.5, 2.0))
    with pytest.raises(HubRefusal, match="class_weight 'none'"):
        newton_step(make_spec(), table, weighted)


def test_hubs_revalidate_the_spec_and_refuse_an_unvetted_one() -> None:
    """A spec that bypassed the coordinator's validation still never runs at a hub: the hub's
    ClientApp answers with an error naming the refused option."""
    data = make_spec().model_dump(mode="json")
    data["model"] = {"name": "gradient_boosting", "trees": 500}
    source = InMemorySource(synthetic_hubs()[0])
    with registered_sources([source]) as (token,):
        context = Context(EMBEDDED_RUN_ID, 5, {"hub-name": "hub-a", "memory-source": token}, RecordDict(), {SPEC_KEY: json.dumps(data)})
        grid = InProcessGrid(client_app, [InProcessHub(5, context)], Run.create_empty(EMBEDDED_RUN_ID))
        with coordinator_identity(EMBEDDED_RUN_ID):
            (reply,) = grid.send_and_receive([Message(StatsIns(RowSelection()).to_record(), 5, MessageKind.SUMMARY.value)])
    assert reply.has_error()
    assert "SpecError" in reply.error.reason and "'gradient_boosting' is not a vetted algorithm" in reply.error.reason


def test_hubs_below_the_minimum_cohort_size_refuse() -> None:
    tables = synthetic_hubs()
    with pytest.raises(StudyFailed, match="census: 0 hub"):
        run_study(tables, make_spec(resources={"min_rows_per_hub": 10_000}))
    result = run_study(tables, make_spec(resources={"min_rows_per_hub": 200}))
    assert [count.hub for count in result.hubs] == ["hub-a", "hub-c"]  # hub-b has 180 rows
    assert len(result.dropped_hubs) == 1
