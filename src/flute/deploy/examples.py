"""Example scoring input: a FHIR transaction Bundle of simulated patients, each eligible for the
model (meets the inclusion criteria) with all 7 study variables recorded and nothing invalid.

Used where realistic, varied requests of a chosen size are needed: the scoring benchmark, the
service tests and demonstrations. The patients come from the cohort simulator (flute.cohort), so
they are written exactly as the IG profiles and the simulator's site habits dictate.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from flute.cohort.sim_fhir import outcome_resource, patient_resources
from flute.cohort.sim_patients import MessRates, draw_site_patients
from flute.cohort.sites import SITES

_CLEAN = MessRates(volume_missing=0.0, dre_missing=0.0, unlabelled=0.0, earlier_psa=0.0, entered_in_error_psa=0.0, invalid=0.0)


def example_bundle(n_patients: int, seed: int = 0) -> dict[str, Any]:
    """A transaction Bundle with exactly `n_patients` eligible, complete patients."""
    if n_patients < 1:
        raise ValueError(f"n_patients must be at least 1, got {n_patients}")
    rng = np.random.default_rng(seed)
    chosen = []
    while len(chosen) < n_patients:
        drawn = draw_site_patients(SITES[0], max(2 * n_patients, 64), rng, _CLEAN)  # small draws may hold no eligible man
        chosen.extend(p for p in drawn if p.truly_included)
    entries = []
    for patient in chosen[:n_patients]:
        outcome_id = outcome_resource(patient)["id"]  # what the model predicts: not in a scoring request
        for resource in patient_resources(patient):
            if resource["id"] == outcome_id:
                continue
            entries.append({"resource": resource, "request": {"method": "PUT", "url": f"{resource['resourceType']}/{resource['id']}"}})
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}
