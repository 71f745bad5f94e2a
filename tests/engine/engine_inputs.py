"""Inputs of the engine tests: three synthetic, deliberately non-identically distributed hubs
(different sizes, prevalence, case mix and missingness) and a study spec builder."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from flute.cohort.table import StudyTable
from flute.engine.apps import client_app, server_app
from flute.engine.embedded import HubBinding, run_embedded, study_run_config
from flute.engine.grid import HubFault
from flute.engine.result import StudyResult
from flute.engine.sources import InMemorySource
from flute.engine.spec import StudySpec

COLUMNS = ("ageAtBiopsy", "psa", "prostateVolume", "pirads")
LOG_COLUMNS = ("psa", "prostateVolume")
HUB_NAMES = ("hub-a", "hub-b", "hub-c")


def hub_table(seed: int, n: int, *, age_shift: float, pirads_weights: Sequence[float], missing: float) -> StudyTable:
    rng = np.random.default_rng(seed)
    age = rng.normal(66.0 + age_shift, 7.0, n).round()
    psa = np.exp(rng.normal(1.9, 0.6, n)).round(1) + 0.1
    volume = np.exp(rng.normal(3.9, 0.4, n)).round(1)
    pirads = rng.choice([1.0, 2.0, 3.0, 4.0, 5.0], size=n, p=np.asarray(pirads_weights) / np.sum(pirads_weights))
    logit = -4.0 + 0.04 * (age - 66.0) + 0.9 * np.log(psa) - 1.0 * (np.log(volume) - 3.9) + 1.1 * (pirads - 3.0)
    labels = (rng.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int64)
    features = np.column_stack([age, psa, volume, pirads])
    features[rng.random(n) < missing, 1] = np.nan
    features[rng.random(n) < missing, 2] = np.nan
    return StudyTable(COLUMNS, features, labels)


def synthetic_hubs() -> list[StudyTable]:
    return [
        hub_table(11, 420, age_shift=0.0, pirads_weights=[10, 5, 25, 40, 20], missing=0.03),
        hub_table(12, 180, age_shift=4.0, pirads_weights=[5, 2, 20, 43, 30], missing=0.10),
        hub_table(13, 260, age_shift=-3.0, pirads_weights=[20, 10, 30, 30, 10], missing=0.0),
    ]


def make_spec(**overrides: Any) -> StudySpec:
    data: dict[str, Any] = {
        "study_id": "engine-test",
        "name": "Engine test study",
        "cohort": {"variables": list(COLUMNS)},
        "preprocessing": {"log_transform": list(LOG_COLUMNS)},
        "model": {"name": "logistic_regression", "l2": 0.001},
        "training": {"rounds": 25, "tolerance": 1e-10},
        "seed": 7,
        "federation": {"min_hubs": 2, "retries": 1, "timeout_s": 30},
        "evaluation": {"cv_folds": 0, "leave_one_hub_out": False, "score_bins": 2000},
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return StudySpec.from_mapping(data)


def run_study(
    tables: Sequence[StudyTable],
    spec: StudySpec,
    *,
    faults: dict[str, HubFault] | None = None,
    checkpoint: Path | None = None,
) -> StudyResult:
    faults = faults or {}
    hubs = [HubBinding(name, source=InMemorySource(table), fault=faults.get(name)) for name, table in zip(HUB_NAMES, tables)]
    return run_embedded(server_app, client_app, hubs, study_run_config(spec, checkpoint=checkpoint))


def pooled(tables: Sequence[StudyTable]) -> StudyTable:
    return StudyTable(COLUMNS, np.vstack([t.features for t in tables]), np.concatenate([t.labels for t in tables]))
