"""The simulated pilot's true risks: each labelled, included row's csPCa probability under its
site's true model, aligned with the study tables (benchmarks report them beside trained models)."""

from __future__ import annotations

import numpy as np

from flute.cohort.sim_tables import simulated_site_tables, simulated_sites_with_true_risks
from flute.evaluate.exact import exact_auroc


def test_true_risks_are_aligned_with_the_study_rows_and_calibrated() -> None:
    sites = simulated_sites_with_true_risks(seed=3, scale=0.5)
    tables = simulated_site_tables(seed=3, scale=0.5)
    assert list(sites) == list(tables)
    for name, (table, risks) in sites.items():
        np.testing.assert_array_equal(table.features, tables[name].features)
        np.testing.assert_array_equal(table.labels, tables[name].labels)
        assert risks.shape == (table.n,) and np.all((risks > 0) & (risks < 1))
        # outcomes were drawn from these probabilities: their mean matches the observed rate
        assert abs(risks.mean() - table.labels.mean()) < 3 * np.sqrt(risks.mean() * (1 - risks.mean()) / table.n), name
        assert exact_auroc(table.labels, risks) > 0.8, name
