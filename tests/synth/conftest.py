"""Simulated pilot hub homes shared by the synthetic-data tests (imported once per session)."""

from __future__ import annotations

from pathlib import Path

import pytest

from simulated_hubs import simulated_hub_homes


@pytest.fixture(scope="session")
def synth_hub_homes(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return simulated_hub_homes(tmp_path_factory.mktemp("synth-pilot"), seed=7)
