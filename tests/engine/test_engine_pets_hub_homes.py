"""Secure aggregation over REAL hub homes (URS-2, F-SRS-10): each hub's Ed25519 identity comes
from its own home (created 0600 on first use) and the coordinator's enrolment list is built from
those homes - the path a hub store takes, not the in-memory test keys."""

from __future__ import annotations

import stat
from pathlib import Path

import numpy as np
import pytest

from flute.engine.apps import client_app, server_app
from flute.engine.embedded import HubBinding, run_embedded, study_run_config
from flute.engine.result import StudyResult
from flute.engine.workflow import SECURE_SUM_SITE
from flute.hub.home import load_config
from simulated_hubs import simulated_hub_homes

from .engine_inputs import make_spec

VARIABLES = ["ageAtBiopsy", "psa", "prostateVolume", "pirads", "dre"]


@pytest.fixture(scope="module")
def hub_homes(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return simulated_hub_homes(tmp_path_factory.mktemp("secagg-homes"), seed=11)


def _run(homes: list[Path], pets: dict[str, str] | None) -> StudyResult:
    spec = make_spec(cohort={"variables": VARIABLES}, evaluation={"cv_folds": 2}, **({"pets": pets} if pets else {}))
    bindings = [HubBinding(load_config(home).name, home=home) for home in homes]
    return run_embedded(server_app, client_app, bindings, study_run_config(spec))


@pytest.mark.slow
def test_secagg_study_over_hub_homes_equals_the_plaintext_study(hub_homes: list[Path]) -> None:
    plain = _run(hub_homes, None)
    secure = _run(hub_homes, {"mode": "secagg"})
    for a, b in zip(plain.outcomes, secure.outcomes):
        np.testing.assert_allclose(a.model.weights, b.model.weights, atol=1e-6)
    assert set(secure.cv_site_summaries()) == {SECURE_SUM_SITE}
    assert secure.cv_pooled_summary().n == plain.cv_pooled_summary().n
    for home in hub_homes:
        keys = [p for p in home.iterdir() if "secagg" in p.name]
        assert keys, f"no secure-aggregation identity key was created in {home}"
        assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in keys)
