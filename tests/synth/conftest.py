"""Simulated pilot hub homes shared by the synthetic-data tests (imported once per session)."""

from __future__ import annotations

from pathlib import Path

import pytest

from flute.cohort.simulate import simulate_cohort
from flute.hub.node import init_hub, open_hub


@pytest.fixture(scope="session")
def synth_hub_homes(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("synth-pilot")
    manifest = simulate_cohort(root / "fhir", seed=7, fmt="ndjson", scale=0.05)
    homes = []
    for site in manifest.sites:
        home = root / "hubs" / site.slug
        init_hub(home, site.slug)
        with open_hub(home) as hub:
            hub.import_paths(sorted((root / "fhir" / site.directory).glob("*.ndjson")))
        homes.append(home)
    return homes
