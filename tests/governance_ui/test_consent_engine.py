"""F-SRS-9 / F-SRS-7 end to end: a federated study over real hub homes is refused by every hub
until its data owner approved the study, and only on the granted fields; each refusal is logged
as a data use outside the grant and raises an alert for the owner (NF-PIL-10)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from flute.cohort.simulate import simulate_cohort
from flute.engine.apps import client_app, server_app
from flute.engine.embedded import HubBinding, run_embedded, study_run_config
from flute.engine.spec import StudySpec
from flute.engine.workflow import TooFewHubs
from flute.governance.access import AccessDecision, AccessRequest, RequestStatus
from flute.hub.consent import ConsentRegister
from flute.hub.node import init_hub, open_hub

from .ui_support import DECLARATION

VARIABLES = ("ageAtBiopsy", "psa", "pirads", "dre")
SPEC = StudySpec.from_mapping(
    {
        "study_id": "consent-study",
        "name": "consent gate",
        "cohort": {"variables": list(VARIABLES)},
        "model": {"name": "logistic_regression", "l2": 0.01},
        "training": {"rounds": 4},
        "federation": {"min_hubs": 2, "retries": 0, "timeout_s": 60},
        "resources": {"min_rows_per_hub": 10},
        "evaluation": {"cv_folds": 0, "leave_one_hub_out": False, "score_bins": 1000},
    }
)


@pytest.fixture(scope="module")
def hub_homes(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("consent")
    manifest = simulate_cohort(root / "fhir", seed=5, fmt="ndjson", scale=0.05)
    homes = []
    for site in (manifest.sites[0], manifest.sites[2]):
        home = root / site.slug
        init_hub(home, site.slug)
        with open_hub(home) as hub:
            hub.import_paths(sorted((root / "fhir" / site.directory).glob("*.ndjson")))
            ConsentRegister(hub.store, site.slug, None).declare(DECLARATION, "owner")
        homes.append(home)
    return homes


def _run(homes: list[Path]) -> object:
    bindings = [HubBinding(name=home.name, home=home) for home in homes]
    return run_embedded(server_app, client_app, bindings, study_run_config(SPEC))


def _approve(home: Path, request_id: str, fields: tuple[str, ...]) -> None:
    now = datetime.now(UTC)
    request = AccessRequest(
        request_id, SPEC.study_id, "researcher-1", "uni", home.name, DECLARATION.dataset, VARIABLES, "validation", 2.0, 1e-6,
        RequestStatus.PENDING, now,
    )
    with open_hub(home) as hub:
        ConsentRegister(hub.store, home.name, None).decide(request, AccessDecision(request_id, True, fields, 2.0, 1e-6, "", "owner", now))


def _uses(home: Path) -> list[tuple[bool, tuple[str, ...]]]:
    with open_hub(home) as hub:
        return [(use.allowed, use.fields) for use in ConsentRegister(hub.store, home.name, None).recent_uses(DECLARATION.dataset)]


@pytest.mark.slow
def test_training_waits_for_consent_and_granted_fields(hub_homes: list[Path]) -> None:
    first, second = hub_homes
    with pytest.raises(TooFewHubs, match="0 hub"):
        _run(hub_homes)
    for home in hub_homes:
        uses = _uses(home)
        assert uses and not any(allowed for allowed, _ in uses), "no step may run before the owner's approval"
        with open_hub(home) as hub:
            alerts = ConsentRegister(hub.store, home.name, None).alerts()
        assert alerts and {alert.rule for alert in alerts} == {"outside-grant"}
        assert "has not approved study 'consent-study'" in alerts[0].message

    # The first hub grants everything, the second withholds DRE: the second still refuses.
    _approve(first, "req-first", VARIABLES)
    _approve(second, "req-second", ("ageAtBiopsy", "psa", "pirads"))
    with pytest.raises(TooFewHubs, match="1 hub"):
        _run(hub_homes)
    with open_hub(second) as hub:
        latest = ConsentRegister(hub.store, second.name, None).alerts()[0]
    assert "field(s) ['dre'] are not granted" in latest.message

    # With the second hub's consent for every field the study runs, every step logged as allowed.
    with open_hub(second) as hub:
        ConsentRegister(hub.store, second.name, None).revoke("req-second", "owner")
    _approve(second, "req-second-full", VARIABLES)
    before = len(_uses(second))
    result = _run(hub_homes)
    assert sorted(hub.hub for hub in result.hubs) == sorted(home.name for home in hub_homes) and not result.dropped_hubs
    after = _uses(second)
    assert len(after) > before and all(allowed for allowed, _ in after[: len(after) - before])


@pytest.mark.slow
def test_dp_statistics_need_a_grant_and_spend_the_budget_the_owner_set(tmp_path: Path) -> None:
    """The DP statistics path shares the guard and the ledger: refused without a grant, then
    charged to the budget the approval set (ledger dataset = hub name)."""
    from flute.engine.stats_records import StatisticsRequest
    from flute.engine.stats_workflow import StatisticsFailed, run_statistics_embedded

    manifest = simulate_cohort(tmp_path / "fhir", seed=9, fmt="ndjson", scale=0.05)
    site = manifest.sites[0]
    home = tmp_path / site.slug
    init_hub(home, site.slug)
    with open_hub(home) as hub:
        hub.import_paths(sorted((tmp_path / "fhir" / site.directory).glob("*.ndjson")))
        ConsentRegister(hub.store, site.slug, None).declare(DECLARATION, "owner")
    request = StatisticsRequest(study=SPEC.study_id, variables=("psa",), kind="mean", pet="dp", epsilon=0.4)
    with pytest.raises(StatisticsFailed, match="has not approved study 'consent-study'"):
        run_statistics_embedded(request, [HubBinding(name=site.slug, home=home)])
    _approve(home, "req-stats", ("psa", "pirads"))
    result = run_statistics_embedded(request, [HubBinding(name=site.slug, home=home)])
    assert [h.hub for h in result.hubs] == [site.slug] and not result.failures
    with open_hub(home) as hub:
        budget = ConsentRegister(hub.store, site.slug, None).ledger.budget(SPEC.study_id, site.slug)
    assert budget.epsilon_total == 2.0 and budget.epsilon_spent == pytest.approx(0.4)
    with pytest.raises(StatisticsFailed, match=r"\['dre'\] are not granted"):
        run_statistics_embedded(StatisticsRequest(study=SPEC.study_id, variables=("dre",), kind="mean", pet="dp", epsilon=0.1),
                                [HubBinding(name=site.slug, home=home)])

    # The same query after one patient's withdrawal differs by that patient: flagged (NF-PIL-10).
    with open_hub(home) as hub, hub.store.engine.connect() as connection:
        pseudonym = connection.exec_driver_sql("SELECT pseudonym FROM study_row WHERE included AND cspca IS NOT NULL LIMIT 1").scalar_one()
    with open_hub(home) as hub:
        hub.store.withdraw(pseudonym, "patient request")
    run_statistics_embedded(request, [HubBinding(name=site.slug, home=home)])
    with open_hub(home) as hub:
        alerts = ConsentRegister(hub.store, site.slug, None).alerts()
    assert alerts[0].rule == "differencing" and "differ by only 1 record(s)" in alerts[0].message
