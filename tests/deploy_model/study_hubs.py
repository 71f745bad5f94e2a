"""A small federated logistic study over three in-memory hubs (the `trained` fixture's rows split
in three), for the tests that package a study result."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from flute.cohort.table import StudyTable
from flute.cohort.variables import VARIABLE_NAMES
from flute.engine.apps import client_app, server_app
from flute.engine.embedded import HubBinding, run_embedded, study_run_config
from flute.engine.result import StudyResult
from flute.engine.sources import InMemorySource
from flute.engine.spec import StudySpec

from .conftest import LOG_COLUMNS, Trained

HUBS = ("hub-a", "hub-b", "hub-c")


def logistic_spec(study_id: str, name: str, *, categories: Sequence[str] = (), hub_intercepts: Sequence[str] = ()) -> StudySpec:
    """25 Newton rounds, 2-fold CV, no leave-one-hub-out: fast and converged."""
    preprocessing: dict[str, object] = {"log_transform": list(LOG_COLUMNS), "categories": list(categories), "hub_intercepts": list(hub_intercepts)}
    return StudySpec.from_mapping(
        {
            "study_id": study_id,
            "name": name,
            "cohort": {"variables": list(VARIABLE_NAMES)},
            "preprocessing": preprocessing,
            "model": {"name": "logistic_regression", "l2": 0.001},
            "training": {"rounds": 25, "tolerance": 1e-10},
            "federation": {"min_hubs": 3, "timeout_s": 60},
            "evaluation": {"cv_folds": 2, "leave_one_hub_out": False, "score_bins": 2000},
        }
    )


def run_on_three_hubs(trained: Trained, spec: StudySpec) -> StudyResult:
    parts = np.array_split(np.arange(trained.features.shape[0]), len(HUBS))
    hubs = [
        HubBinding(name, source=InMemorySource(StudyTable(VARIABLE_NAMES, trained.features[rows], trained.labels[rows])))
        for name, rows in zip(HUBS, parts)
    ]
    return run_embedded(server_app, client_app, hubs, study_run_config(spec))
