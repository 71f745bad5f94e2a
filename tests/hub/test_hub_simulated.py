"""The hub against the simulator's contract (F-PIL-5, NF-PIL-3): importing each simulated
hospital stores every valid resource, quarantines exactly the deliberately invalid ones, and
derives for every patient the study row the simulator says a correct extraction returns."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from flute.cohort.sim_fhir import patient_resource
from flute.cohort.simulate import simulate_cohort, simulate_sites
from flute.cohort.variables import VARIABLE_NAMES
from flute.hub.models import VARIABLE_COLUMNS, StudyRowRecord
from flute.hub.node import init_hub, open_hub
from flute.hub.summary import quarantined_entries

SEED, SCALE = 11, 0.1


@pytest.mark.parametrize("fmt", ["ndjson", "bundles"])
def test_every_simulated_site_ingests_to_the_expected_rows(tmp_path: Path, fmt: str) -> None:
    manifest = simulate_cohort(tmp_path / "cohort", seed=SEED, fmt=fmt, scale=SCALE)
    for site in simulate_sites(SEED, SCALE):
        slug = site.spec.slug
        init_hub(tmp_path / slug, slug)
        with open_hub(tmp_path / slug) as hub:
            report = hub.import_paths([tmp_path / "cohort" / slug])
            invalid = sorted(item.resource for item in manifest.invalid if item.site == slug)
            quarantined = sorted(f"{e.resource_type}/{e.resource_id}" for e in quarantined_entries(hub.store))
            assert quarantined == invalid
            assert report.read == sum(manifest.site(slug).resources.values())
            assert report.stored == report.read - len(invalid)
            with hub.store.engine.connect() as connection:
                rows = {row.pseudonym: row for row in connection.execute(select(StudyRowRecord.__table__))}
            assert len(rows) == len(site.patients)
            for patient in site.patients:
                expected, row = patient.expected_row(), rows[hub.pseudonymizer.for_patient(patient_resource(patient))]
                got = {name: getattr(row, VARIABLE_COLUMNS[name]) for name in VARIABLE_NAMES}
                assert got == {name: expected.variables[name] for name in VARIABLE_NAMES}, patient.id
                assert (row.included, row.isup, row.cspca) == (expected.included, expected.isup, expected.cspca), patient.id
