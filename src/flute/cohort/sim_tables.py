"""The simulated pilot hospitals as in-memory study tables, without writing or ingesting FHIR.

Each table holds exactly the rows a hub's store yields after ingesting that hospital's simulated
FHIR (`SimulatedPatient.expected_row` is the contract the extraction is tested against): the
included men with a biopsy outcome, the 7 StudyVariables with NaN where the record is missing or
was quarantined. Benchmarks and engine tests use it to run federated studies over the simulated
cohort in seconds rather than through files and hub homes.
"""

from __future__ import annotations

import numpy as np

from flute.cohort.simulate import simulate_sites
from flute.cohort.table import StudyTable
from flute.cohort.variables import VARIABLE_NAMES


def simulated_site_tables(seed: int = 0, scale: float = 1.0) -> dict[str, StudyTable]:
    """Site slug -> the included, labelled rows of that simulated hospital."""
    return {site: table for site, (table, _) in simulated_sites_with_true_risks(seed, scale).items()}


def simulated_sites_with_true_risks(seed: int = 0, scale: float = 1.0) -> dict[str, tuple[StudyTable, np.ndarray]]:
    """Site slug -> (its study table, each row's csPCa probability under the site's true model).
    The true risks are what the data-generating model predicts: benchmarks report them beside
    trained models to show how much a perfect model could gain on the same men."""
    sites = {}
    for site in simulate_sites(seed, scale):
        kept = [(row, patient.true_risk) for row, patient in ((patient.expected_row(), patient) for patient in site.patients) if row.included and row.cspca is not None]
        rows = [row for row, _ in kept]
        features = np.array(
            [[np.nan if row.variables[name] is None else float(row.variables[name]) for name in VARIABLE_NAMES] for row in rows],
            dtype=np.float64,
        ).reshape(len(rows), len(VARIABLE_NAMES))
        table = StudyTable(VARIABLE_NAMES, features, np.array([row.cspca for row in rows], dtype=np.int64))
        sites[site.spec.slug] = (table, np.array([risk for _, risk in kept], dtype=np.float64))
    return sites
