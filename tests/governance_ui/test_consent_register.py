"""Access decisions, the consent guard, FHIR export and misuse rules on a real hub store
(NF-PIL-9/10, F-SRS-7/9, F-STD-5/6/8)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from flute.governance import misuse
from flute.governance.access import AccessDecision, AccessError, AccessRequest, Grant, RequestStatus, check_decision
from flute.governance.audit import AuditTrail, verify
from flute.governance.fhir_export import capability_statement, consent_resource, searchset_bundle
from flute.governance.keys import load_node_keys
from flute.hub.consent import ConsentRefused, ConsentRegister
from flute.hub.ledger import BudgetExceeded
from flute.hub.node import init_hub, open_hub
from flute.privacy.dp.cost import DpCost

from .r4b import r4b_problems
from .ui_support import DECLARATION, HUB

NOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


def _request(request_id: str = "r1", fields: tuple[str, ...] = ("psa", "pirads", "dre")) -> AccessRequest:
    return AccessRequest(request_id, "study-1", "alice", "uni", HUB, DECLARATION.dataset, fields, "validation", 1.0, 1e-6, RequestStatus.PENDING, NOW)


def _approve(request: AccessRequest, fields: tuple[str, ...], epsilon: float = 2.0) -> AccessDecision:
    return AccessDecision(request.request_id, True, fields, epsilon, 1e-6, "", "owner", datetime.now(UTC))


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def register(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ConsentRegister]:
    """A governed hub's register on SQLite and on a real PostgreSQL server."""
    db_url = None if request.param == "sqlite" else request.getfixturevalue("postgres_server").create_database()
    home = tmp_path / "hub"
    init_hub(home, HUB, db_url)
    hub = open_hub(home)
    register = ConsentRegister(hub.store, HUB, AuditTrail(load_node_keys(home).audit_key))
    register.declare(DECLARATION, "owner")
    yield register
    hub.store.close()


def test_decisions_are_checked_against_the_request() -> None:
    request = _request()
    with pytest.raises(AccessError, match=r"field\(s\) \['ageAtBiopsy'\] were not requested"):
        check_decision(request, _approve(request, ("psa", "ageAtBiopsy")))
    with pytest.raises(AccessError, match="a rejection must give the researcher a reason"):
        check_decision(request, AccessDecision("r1", False, (), None, None, " ", "owner", NOW))
    with pytest.raises(AccessError, match="epsilon must be a positive number"):
        check_decision(request, _approve(request, ("psa",), epsilon=0.0))
    with pytest.raises(AccessError, match="study id"):
        AccessRequest("r", "Bad Study", "a", "o", HUB, "d", ("psa",), "p", 1.0, 0.0, RequestStatus.PENDING, NOW)


def test_grant_restricts_fields_sets_the_budget_and_is_audited(register: ConsentRegister, tmp_path: Path) -> None:
    with pytest.raises(ConsentRefused, match="has not approved study 'study-1'"):
        register.guard("study-1", DECLARATION.dataset, ("psa",), "stats.mean")
    request = _request()
    grant = register.decide(request, _approve(request, ("psa", "pirads")))
    assert grant is not None and grant.fields == ("psa", "pirads")
    assert register.ledger.budget("study-1", HUB).epsilon_total == 2.0
    assert register.guard("study-1", DECLARATION.dataset, ("psa", "pirads"), "train.newton") == grant
    with pytest.raises(ConsentRefused, match=r"field\(s\) \['dre'\] are not granted"):
        register.guard("study-1", DECLARATION.dataset, ("psa", "dre"), "train.newton")
    with pytest.raises(ConsentRefused, match="has not approved study 'study-2'"):
        register.guard("study-2", DECLARATION.dataset, ("psa",), "train.newton")
    # The budget the owner set is the ledger's: a release beyond it is refused.
    with pytest.raises(BudgetExceeded):
        register.ledger.reserve("study-1", HUB, DpCost(2.5, 0.0, "record", "laplace", {}), "too much")
    register.revoke(request.request_id, "owner")
    with pytest.raises(ConsentRefused):
        register.guard("study-1", DECLARATION.dataset, ("psa",), "train.newton")

    uses = register.recent_uses(DECLARATION.dataset)
    assert [use.allowed for use in reversed(uses)] == [False, True, False, False, False]
    with open_hub(tmp_path / "hub") as hub, hub.store.engine.connect() as connection:
        audit = verify(connection, key=load_node_keys(tmp_path / "hub").audit_key)
    assert audit.intact and audit.entries >= 7


def test_misuse_rules_fire_and_alerts_reach_the_owner(register: ConsentRegister) -> None:
    request = _request()
    register.decide(request, _approve(request, ("psa", "pirads", "dre")))
    register.guard("study-1", DECLARATION.dataset, ("psa", "pirads"), "stats.mean", cohort_size=412)
    register.guard("study-1", DECLARATION.dataset, ("psa", "pirads"), "stats.mean", cohort_size=300)  # far apart: fine
    assert register.alerts() == []
    register.guard("study-1", DECLARATION.dataset, ("pirads", "psa"), "stats.mean", cohort_size=411)
    alerts = register.alerts()
    assert [a.rule for a in alerts] == ["differencing"] and "differ by only 1 record" in alerts[0].message

    for step in range(3):  # 3 x 0.2 of a 2.0 budget within the hour: 30% > 25%
        reservation = register.ledger.reserve("study-1", HUB, DpCost(0.2, 0.0, "record", "laplace", {}), f"mean {step}")
        register.ledger.commit(reservation)
    register.guard("study-1", DECLARATION.dataset, ("dre",), "stats.count", cohort_size=50)
    assert register.alerts()[0].rule == "budget-burn" and "30%" in register.alerts()[0].message

    register.acknowledge(alerts[0].id, "owner")
    assert {a.id for a in register.alerts(open_only=True)} == {register.alerts()[0].id}


def test_rules_as_pure_functions() -> None:
    use = misuse.DataUse("s", "d", "q", ("psa",), 100, True, NOW)
    old = misuse.DataUse("t", "d", "q", ("psa",), 97, True, NOW - timedelta(days=8))
    assert misuse.differencing([old], use) is None  # outside the window
    assert misuse.differencing([misuse.DataUse("t", "d", "q", ("psa",), 100, True, NOW)], use) is None  # same cohort
    assert misuse.differencing([misuse.DataUse("t", "d", "q", ("psa", "dre"), 99, True, NOW)], use) is None  # other fields
    found = misuse.differencing([misuse.DataUse("t", "d", "q", ("psa",), 95, True, NOW - timedelta(hours=1))], use)
    assert found is not None and found.rule is misuse.Rule.DIFFERENCING
    spends = [misuse.Spend(NOW - timedelta(minutes=10), 0.1), misuse.Spend(NOW - timedelta(hours=2), 5.0)]
    assert misuse.budget_burn(spends, 1.0, NOW, study="s", dataset="d") is None
    assert misuse.budget_burn([*spends, misuse.Spend(NOW, 0.2)], 1.0, NOW, study="s", dataset="d") is not None


def _grant(revoked: bool = False) -> Grant:
    return Grant("r1", HUB, "study-1", DECLARATION.dataset, "alice", "uni", ("psa", "pirads"), 2.0, 1e-6, "owner", NOW,
                 NOW + timedelta(days=1) if revoked else None)


def test_grants_and_capabilities_export_as_valid_r4b_resources() -> None:
    active = consent_resource(_grant(), "https://hub.example/ui/#dataset-x")
    revoked = consent_resource(_grant(revoked=True), "https://hub.example/ui/")
    bundle = searchset_bundle([active], "https://hub.example/fhir")
    statement = capability_statement("https://hub.example/fhir", "0.1.0", NOW)
    assert r4b_problems([active, revoked, bundle, statement]) == []
    assert active["status"] == "active" and revoked["status"] == "inactive" and "end" in revoked["provision"]["period"]
    assert [c["coding"][0]["code"] for c in active["provision"]["code"]] == ["psa", "pirads"]
    assert bundle["entry"][0]["fullUrl"] == "https://hub.example/fhir/Consent/grant-r1"
    assert statement["fhirVersion"] == "4.0.1" and [r["type"] for r in statement["rest"][0]["resource"]] == ["Consent"]
    # The validator is not vacuous: a Consent without its required scope and a wrong status fail.
    broken = {**active, "status": "granted"}
    del broken["scope"]
    assert len(r4b_problems([broken])) == 1
    with pytest.raises(ValueError, match="time zone"):
        capability_statement("https://hub.example/fhir", "0.1.0", datetime(2026, 1, 1))
