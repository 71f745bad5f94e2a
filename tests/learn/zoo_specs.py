"""Study specs, hub tables and an embedded runner for the model-zoo engine tests (small models,
small data, three non-identically distributed hubs)."""

from __future__ import annotations

from typing import Any

import numpy as np

from flute.cohort.table import StudyTable
from flute.engine.result import StudyResult
from flute.engine.spec import StudySpec

COLUMNS = ("ageAtBiopsy", "psa", "prostateVolume", "pirads")
LOG_COLUMNS = ("psa", "prostateVolume")


def zoo_spec(model: dict[str, Any], **sections: Any) -> StudySpec:
    data: dict[str, Any] = {
        "study_id": "zoo-test",
        "name": "Model zoo test study",
        "cohort": {"variables": list(COLUMNS)},
        "preprocessing": {"log_transform": list(LOG_COLUMNS)},
        "model": model,
        "training": {"rounds": 60, "tolerance": 1e-9, "local_epochs": 5, "learning_rate": 0.5},
        "seed": 7,
        "federation": {"min_hubs": 2, "retries": 0, "timeout_s": 60},
        "evaluation": {"cv_folds": 2, "leave_one_hub_out": False, "score_bins": 2000},
    }
    data.update(sections)
    return StudySpec.from_mapping(data)


def raw_hub(seed: int, n: int, *, age_shift: float, intercept: float) -> StudyTable:
    """A hub's study table on the raw clinical scale (positive PSA and volume, integer PI-RADS)."""
    rng = np.random.default_rng(seed)
    age = rng.normal(66.0 + age_shift, 7.0, n).round()
    psa = np.exp(rng.normal(1.9, 0.6, n)).round(1) + 0.1
    volume = np.exp(rng.normal(3.9, 0.4, n)).round(1)
    pirads = rng.choice([1.0, 2.0, 3.0, 4.0, 5.0], size=n, p=[0.15, 0.05, 0.3, 0.3, 0.2])
    logit = intercept + 0.04 * (age - 66.0) + 0.9 * np.log(psa) - 1.0 * (np.log(volume) - 3.9) + 1.1 * (pirads - 3.0)
    labels = (rng.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int64)
    features = np.column_stack([age, psa, volume, pirads])
    features[rng.random(n) < 0.05, 1] = np.nan
    return StudyTable(COLUMNS, features, labels)


HUB_NAMES = ("hub-a", "hub-b", "hub-c")


def raw_hubs() -> list[StudyTable]:
    return [raw_hub(21, 200, age_shift=0.0, intercept=-2.0), raw_hub(22, 90, age_shift=4.0, intercept=-1.2), raw_hub(23, 130, age_shift=-3.0, intercept=-1.6)]


def run_zoo_study(spec: StudySpec, tables: list[StudyTable] | None = None) -> StudyResult:
    from flute.engine.apps import client_app, server_app
    from flute.engine.embedded import HubBinding, run_embedded, study_run_config
    from flute.engine.sources import InMemorySource

    hubs = [HubBinding(name, source=InMemorySource(table)) for name, table in zip(HUB_NAMES, tables or raw_hubs())]
    return run_embedded(server_app, client_app, hubs, study_run_config(spec))
