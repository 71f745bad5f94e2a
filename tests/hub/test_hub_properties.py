"""Property: importing any mix of valid and invalid input loses nothing valid, quarantines
every invalid entry with a reason, and leaves a consistent store (NF-PIL-3, F-PIL-5)."""

from __future__ import annotations

import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from flute.hub.models import StoredResource, StudyRowRecord
from flute.hub.node import init_hub, open_hub
from flute.hub.summary import quarantined_entries

from .hub_inputs import Resource, find, patient_resources, write_bundle, write_ndjson

UNREADABLE = "{broken json"


@dataclass
class Scenario:
    ndjson: list[Resource | str] = field(default_factory=list)
    transactions: list[list[Resource]] = field(default_factory=list)
    stored: dict[tuple[str, str], Resource] = field(default_factory=dict)
    quarantined: Counter[str] = field(default_factory=Counter)  # resource id, or the unreadable marker
    unchanged: int = 0


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    scenario = Scenario()
    for k in range(draw(st.integers(1, 6))):
        resources = patient_resources(f"h-{k}", psa=draw(st.sampled_from([1.0, 3.0, 7.5])), isup=draw(st.sampled_from([None, 1, 2, 4])))
        defect = draw(st.sampled_from(["none", "pirads", "dangling", "unreadable", "duplicate"]))
        if defect == "pirads":
            find(resources, "Observation-PIRADS")["valueInteger"] = 7
        if defect == "dangling":
            ghost = orjson.loads(orjson.dumps(find(resources, "Observation-PSA")))
            ghost["id"], ghost["subject"] = f"h-{k}-ghost-psa", {"reference": f"Patient/ghost-{k}"}
            resources.append(ghost)
        bad_ids = {"pirads": {f"h-{k}-Observation-PIRADS"}, "dangling": {f"h-{k}-ghost-psa"}}.get(defect, set())
        entries: list[Resource] = resources + ([resources[-1]] if defect == "duplicate" else [])
        if defect != "unreadable" and draw(st.booleans()):
            scenario.transactions.append(entries)
            if bad_ids:  # all or nothing
                scenario.quarantined.update(r["id"] for r in entries)
                continue
        else:
            scenario.ndjson.extend(entries)
            if defect == "unreadable":
                scenario.ndjson.append(UNREADABLE)
                scenario.quarantined[UNREADABLE] += 1
            scenario.quarantined.update(bad_ids)
        scenario.unchanged += defect == "duplicate"
        scenario.stored.update({(r["resourceType"], r["id"]): r for r in resources if r["id"] not in bad_ids})
    scenario.ndjson = draw(st.permutations(scenario.ndjson))
    return scenario


@settings(max_examples=25, deadline=None)
@given(scenarios())
def test_mixed_input_loses_nothing_valid_and_quarantines_every_invalid_entry(scenario: Scenario) -> None:
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        paths = [write_ndjson(root / "mixed.ndjson", scenario.ndjson)]
        paths += [write_bundle(root / f"tx-{k}.json", tx, "transaction") for k, tx in enumerate(scenario.transactions)]
        init_hub(root / "hub", "property")
        with open_hub(root / "hub") as hub:
            report = hub.import_paths(paths, chunk_entries=7)
            read = len(scenario.ndjson) + sum(map(len, scenario.transactions))
            assert (report.read, report.unchanged) == (read, scenario.unchanged)
            assert report.read == report.stored + report.unchanged + report.quarantined
            table = StoredResource.__table__
            with hub.store.engine.connect() as connection:
                stored = {
                    (row.resource_type, row.resource_id): orjson.loads(row.body)
                    for row in connection.execute(select(table).where(table.c.is_current.is_(True)))
                }
                rows = connection.execute(select(StudyRowRecord.pseudonym)).scalars().all()
            assert stored == scenario.stored
            entries = quarantined_entries(hub.store)
            assert all(entry.reasons for entry in entries)
            assert Counter(e.resource_id or UNREADABLE for e in entries) == scenario.quarantined
            patients = {key for key in stored if key[0] == "Patient"}
            assert len(rows) == len(patients)
