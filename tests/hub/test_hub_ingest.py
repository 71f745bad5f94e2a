"""Import semantics of the hub (F-PIL-5, F-HUF-19, NF-PIL-2/3/4, NF-PIL-11), each test on SQLite
and on a real PostgreSQL server."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from flute.cohort.variables import DRE, PIRADS, PROSTATE_VOLUME, PSA, VARIABLE_NAMES
from flute.hub.ingest import RULE_ROLLED_BACK, RULE_WITHDRAWN
from flute.hub.models import BatchStatus, ImportBatch, ProvenanceRecord, StoredResource, StudyRowRecord
from flute.hub.node import Hub, init_hub, open_hub
from flute.hub.store import StoreError
from flute.hub.summary import quarantined_entries, summarize

from .hub_inputs import (
    IG_EXCLUDED,
    IG_INCLUDED,
    IG_TEARDOWN,
    find,
    patient_resources,
    write_bundle,
    write_ndjson,
)

#: The validator's rule for a subject that is neither in the input nor in the store.
RULE_DANGLING = "reference.dangling"


def _pseudonym(hub: Hub, patient_id: str) -> str:
    return hub.pseudonymizer.for_patient({"resourceType": "Patient", "id": patient_id})


def _row(hub: Hub, patient_id: str) -> Any:
    with hub.store.engine.connect() as connection:
        return connection.execute(select(StudyRowRecord.__table__).where(StudyRowRecord.pseudonym == _pseudonym(hub, patient_id))).first()


def _versions(hub: Hub, resource_type: str, resource_id: str) -> list[Any]:
    table = StoredResource.__table__
    with hub.store.engine.connect() as connection:
        return connection.execute(
            select(table).where(table.c.resource_type == resource_type, table.c.resource_id == resource_id).order_by(table.c.row_id)
        ).all()


def _count(hub: Hub, model: type) -> int:
    with hub.store.engine.connect() as connection:
        return connection.execute(select(func.count()).select_from(model)).scalar_one()


def _reasons(hub: Hub) -> dict[str, list[str]]:
    """resource id -> rules of its quarantine reasons."""
    return {e.resource_id or e.location: [r["rule"] for r in e.reasons] for e in quarantined_entries(hub.store)}


def test_ig_transaction_bundles_are_stored_and_their_rows_derived(hub: Hub) -> None:
    report = hub.import_paths([IG_INCLUDED, IG_EXCLUDED])
    assert (report.status, report.read, report.stored, report.unchanged, report.quarantined) == (BatchStatus.COMPLETED, 14, 14, 0, 0)
    included, excluded = _row(hub, "EXP-S1-Patient"), _row(hub, "EXP-S2-Patient")
    # Expected values from the IG README (F-PIL-27..32).
    assert (included.age_at_biopsy, included.pca_family_history, included.type_of_biopsy) == (54, 1, 2)
    assert (included.psa, included.dre, included.prostate_volume, included.pirads, included.included) == (5, 1, 30, 3, True)
    assert (excluded.type_of_biopsy, excluded.psa, excluded.dre, excluded.included) == (0, 1, 0, False)
    assert included.cspca is None  # the IG examples carry no outcome
    summary = summarize(hub.store)
    assert (summary.patients, summary.included, summary.labelled, summary.current_resources) == (2, 1, 0, 14)
    assert _count(hub, ProvenanceRecord) == 14


def test_transaction_bundle_is_all_or_nothing(hub: Hub, tmp_path: Path) -> None:
    resources = patient_resources("tx-1")
    find(resources, "Observation-PIRADS")["valueInteger"] = 7  # out of the IG's 1..5
    bundle = write_bundle(tmp_path / "tx.json", resources, "transaction")
    report = hub.import_paths([bundle])
    assert (report.read, report.stored, report.quarantined) == (len(resources), 0, len(resources))
    assert _count(hub, StoredResource) == 0 and summarize(hub.store).patients == 0
    reasons = _reasons(hub)
    assert RULE_ROLLED_BACK not in reasons["tx-1-Observation-PIRADS"]
    failed_entry = [r["id"] for r in resources].index("tx-1-Observation-PIRADS") + 1
    rolled_back = [e for e in quarantined_entries(hub.store) if e.resource_id != "tx-1-Observation-PIRADS"]
    assert len(rolled_back) == len(resources) - 1
    for entry in rolled_back:
        assert [r["rule"] for r in entry.reasons] == [RULE_ROLLED_BACK]
        assert f"entry {failed_entry} failed" in entry.reasons[0]["message"]
        assert json.loads(entry.raw)["id"] == entry.resource_id  # kept exactly as received


def test_batch_and_ndjson_entries_are_judged_one_by_one(hub: Hub, tmp_path: Path) -> None:
    good, bad = patient_resources("b-1"), patient_resources("b-2")
    find(bad, "Observation-PIRADS")["valueInteger"] = 7
    collection = write_bundle(tmp_path / "batch.json", good, "batch")
    ndjson = write_ndjson(tmp_path / "bad.ndjson", [*bad, "{not json"])
    report = hub.import_paths([collection, ndjson])
    assert report.read == len(good) + len(bad) + 1
    assert (report.stored, report.quarantined) == (len(good) + len(bad) - 1, 2)
    assert report.read == report.stored + report.unchanged + report.quarantined
    assert _reasons(hub).keys() >= {"b-2-Observation-PIRADS"}
    assert _row(hub, "b-2").pirads is None and _row(hub, "b-2").psa == 5
    assert _row(hub, "b-1").pirads == 3


def test_reimport_is_idempotent_across_formats(hub: Hub, tmp_path: Path) -> None:
    resources = patient_resources("i-1")
    bundle = write_bundle(tmp_path / "tx.json", resources, "transaction")
    first = hub.import_paths([bundle])
    second = hub.import_paths([bundle])
    third = hub.import_paths([write_ndjson(tmp_path / "same.ndjson", resources)])
    assert first.stored == len(resources)
    for again in (second, third):
        assert (again.stored, again.unchanged, again.quarantined) == (0, len(resources), 0)
    assert _count(hub, StoredResource) == len(resources)
    assert [b.status for b in summarize(hub.store).batches] == ["completed"] * 3


def test_newer_version_updates_row_and_keeps_history(hub: Hub, tmp_path: Path) -> None:
    resources = patient_resources("v-1", psa=5.0)
    psa = find(resources, "Observation-PSA")
    psa["meta"]["versionId"] = "1"
    hub.import_paths([write_ndjson(tmp_path / "v1.ndjson", resources)])
    corrected = json.loads(json.dumps(psa))
    corrected["meta"]["versionId"], corrected["valueQuantity"]["value"] = "2", 2.5
    report = hub.import_paths([write_ndjson(tmp_path / "v2.ndjson", [corrected])])
    assert (report.stored, report.unchanged) == (1, 0)
    versions = _versions(hub, "Observation", "v-1-Observation-PSA")
    assert [(v.version_id, v.is_current) for v in versions] == [("1", False), ("2", True)]
    assert _row(hub, "v-1").psa == 2.5
    # The old version arriving again is known content: unchanged, the correction stays current.
    assert hub.import_paths([write_ndjson(tmp_path / "v1-again.ndjson", [psa])]).unchanged == 1
    # A different version that is older than the current one goes to history only.
    stale = json.loads(json.dumps(psa))
    stale["meta"]["versionId"], stale["valueQuantity"]["value"] = "1", 9.9
    assert hub.import_paths([write_ndjson(tmp_path / "stale.ndjson", [stale])]).stored == 1
    assert [v.is_current for v in _versions(hub, "Observation", "v-1-Observation-PSA")] == [False, True, False]
    assert _row(hub, "v-1").psa == 2.5


def test_last_updated_decides_when_there_is_no_version_id(hub: Hub, tmp_path: Path) -> None:
    resources = patient_resources("lu-1", psa=5.0)
    psa = find(resources, "Observation-PSA")
    psa["meta"]["lastUpdated"] = "2025-03-01T10:00:00+01:00"
    older = json.loads(json.dumps(psa))
    older["meta"]["lastUpdated"], older["valueQuantity"]["value"] = "2025-03-01T08:30:00Z", 7.0  # 09:30+01:00
    hub.import_paths([write_ndjson(tmp_path / "a.ndjson", resources)])
    hub.import_paths([write_ndjson(tmp_path / "b.ndjson", [older])])
    assert _row(hub, "lu-1").psa == 5.0


def test_withdrawal_excludes_patient_and_refuses_reimport(hub: Hub, tmp_path: Path) -> None:
    kept, leaving = patient_resources("w-1", isup=3), patient_resources("w-2", isup=1)
    source = write_ndjson(tmp_path / "two.ndjson", [*kept, *leaving])
    hub.import_paths([source])
    assert hub.store.study_table([PSA]).n == 2
    pseudonym = _pseudonym(hub, "w-2")
    withdrawal = hub.store.withdraw(pseudonym, "patient request")
    assert withdrawal.resources_withdrawn == len(leaving)
    table = hub.store.study_table([PSA])
    assert table.n == 1 and table.labels.tolist() == [1]
    summary = summarize(hub.store)
    assert (summary.patients, summary.withdrawn) == (1, 1)
    report = hub.import_paths([source])
    assert (report.unchanged, report.quarantined) == (len(kept), len(leaving))
    assert all(rules == [RULE_WITHDRAWN] for rules in _reasons(hub).values())
    assert hub.store.study_table([PSA]).n == 1
    with pytest.raises(StoreError, match="already withdrawn"):
        hub.store.withdraw(pseudonym, "again")
    with pytest.raises(StoreError, match="no patient"):
        hub.store.withdraw("0" * 64, "unknown")


def test_subject_must_resolve_within_the_batch_or_the_store(hub: Hub, tmp_path: Path) -> None:
    resources = patient_resources("r-1")
    patient, others = resources[0], resources[1:]
    # Observations before their Patient in the same batch are resolved at the end of the batch.
    report = hub.import_paths([write_ndjson(tmp_path / "obs.ndjson", others), write_ndjson(tmp_path / "pat.ndjson", [patient])])
    assert (report.stored, report.quarantined) == (len(resources), 0)
    # Later data for a Patient already in the store resolves against the store.
    extra = json.loads(json.dumps(find(resources, "Observation-PSA")))
    extra["id"] = "r-1-psa-later"
    dangling = json.loads(json.dumps(extra))
    dangling["id"], dangling["subject"] = "nobody-psa", {"reference": "Patient/nobody"}
    report = hub.import_paths([write_ndjson(tmp_path / "more.ndjson", [extra, dangling])])
    assert (report.stored, report.quarantined) == (1, 1)
    assert _reasons(hub) == {"nobody-psa": [RULE_DANGLING]}


def test_study_table_has_labelled_included_rows_with_nan_for_missing(hub: Hub, tmp_path: Path) -> None:
    resources = [
        *patient_resources("t-1", psa=5.0, isup=2),
        *patient_resources("t-2", psa=4.0, isup=1, with_volume=False),
        *patient_resources("t-3", psa=6.0, isup=None),
    ]
    hub.import_paths([write_ndjson(tmp_path / "t.ndjson", resources)])
    table = hub.store.study_table([PSA, PROSTATE_VOLUME, DRE, PIRADS])
    assert table.columns == (PSA, PROSTATE_VOLUME, DRE, PIRADS)
    rows = sorted(zip(table.features.tolist(), table.labels.tolist(), strict=True))
    assert len(rows) == 2  # t-3 is unlabelled
    (features_a, label_a), (features_b, label_b) = rows
    assert features_a[0] == 4.0 and math.isnan(features_a[1]) and label_a == 0
    assert features_b == [5.0, 30.0, 1.0, 3.0] and label_b == 1
    with pytest.raises(ValueError, match="unknown study variables"):
        hub.store.study_table(["height"])


def test_delete_entries_are_quarantined_not_applied(hub: Hub) -> None:
    hub.import_paths([IG_INCLUDED])
    report = hub.import_paths([IG_TEARDOWN])
    assert (report.read, report.quarantined, report.stored) == (7, 7, 0)
    assert summarize(hub.store).current_resources == 7


def test_batch_counts_add_up_and_match_the_tables(hub: Hub, tmp_path: Path) -> None:
    good = patient_resources("c-1")
    bad = patient_resources("c-2")
    find(bad, "Observation-PIRADS")["valueInteger"] = 0
    tx = write_bundle(tmp_path / "tx.json", bad, "transaction")
    nd = write_ndjson(tmp_path / "good.ndjson", [*good, "[]", '{"resourceType": "Observation"}'])
    report = hub.import_paths([nd, tx, nd])
    assert report.read == report.stored + report.unchanged + report.quarantined
    with hub.store.engine.connect() as connection:
        batch = connection.execute(select(ImportBatch.__table__).where(ImportBatch.id == report.batch_id)).one()
        stored_rows = connection.execute(select(func.count()).where(StoredResource.batch_id == report.batch_id)).scalar_one()
    assert (batch.read_count, batch.stored_count, batch.unchanged_count, batch.quarantined_count) == (
        report.read, report.stored, report.unchanged, report.quarantined,
    )
    assert stored_rows == report.stored == len(good)
    assert len(quarantined_entries(hub.store, report.batch_id)) == report.quarantined == len(bad) + 4


@pytest.mark.postgres
def test_sqlite_and_postgresql_give_the_same_results(tmp_path: Path, postgres_server: Any) -> None:
    """NF-PIL-2/4 acceptance: one input, two backends, identical tables, counts and quarantine."""
    bad = patient_resources("x-2", isup=4)
    find(bad, "Observation-PSA")["valueQuantity"]["code"] = "mmol/L"
    source = write_ndjson(tmp_path / "mixed.ndjson", [*patient_resources("x-1", isup=1, with_volume=False), *bad, "{broken"])
    results = []
    for name, url in (("sqlite", None), ("postgresql", postgres_server.create_database())):
        init_hub(tmp_path / name, "same", url)
        with open_hub(tmp_path / name) as hub:
            report = hub.import_paths([IG_INCLUDED, IG_EXCLUDED, source])
            table = hub.store.study_table(VARIABLE_NAMES, included_only=False)
            rows = sorted(zip(map(repr, table.features.tolist()), table.labels.tolist(), strict=True))
            summary = summarize(hub.store)
            reasons = sorted((e.location, tuple(r["rule"] for r in e.reasons)) for e in quarantined_entries(hub.store))
            results.append((report.to_json() | {"source": None}, rows, summary.to_json() | {"batches": None}, reasons))
    assert results[0] == results[1]
    assert results[0][0]["quarantined"] == 2 and len(results[0][1]) == 2
