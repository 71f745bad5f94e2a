"""Three simulated pilot hospitals as hub homes (one set per test module), workspaces that load
the test generator plugin, and the environment job processes need to import it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from flute.hub.ledger import BudgetStatus, PrivacyLedger
from flute.hub.node import open_hub
from simulated_hubs import simulated_hub_homes

TESTS_DIR = Path(__file__).resolve().parents[1]
PLUGIN_MODULE = "synth_workspace.slow_plugin"
ALL_VARIABLES = "ageAtBiopsy,pcaFamilyHistory,typeOfBiopsy,psa,dre,prostateVolume,pirads"


@pytest.fixture(scope="module")
def hub_homes(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return simulated_hub_homes(tmp_path_factory.mktemp("synth-ws-hubs"), seed=11)


@pytest.fixture
def workspace_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A workspace whose workspace.toml plugs in the test generator; job processes find the
    plugin's module through PYTHONPATH."""
    home = tmp_path / "workspace"
    home.mkdir()
    (home / "workspace.toml").write_text(f'[workspace]\nplugins = ["{PLUGIN_MODULE}"]\n', encoding="utf-8")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(TESTS_DIR), os.environ.get("PYTHONPATH")])))
    monkeypatch.delenv("FLUTE_SYNTH_WORKSPACE", raising=False)
    return home


def budget(home: Path, study: str) -> BudgetStatus:
    with open_hub(home) as hub:
        return PrivacyLedger(hub.store.engine).budget(study, hub.config.name)


def real_split(homes: list[Path], variables: list[str], study: str, folder: Path) -> tuple[Path, Path]:
    """The hospitals' real rows as train/holdout CSVs (70/30, shuffled): what the data owner
    evaluates against, on its own machine."""
    import pandas as pd

    from flute.synth.federated import open_hub_homes
    from flute.synth.io import write_table
    from flute.synth.schema import study_schema

    with open_hub_homes(homes, variables, study) as hubs:
        frame = pd.concat([hub.frame for hub in hubs], ignore_index=True).sample(frac=1.0, random_state=0)
        schema = study_schema(variables, [hub.name for hub in hubs])
    cut = len(frame) * 7 // 10
    write_table(frame.iloc[:cut], schema, folder / "train.csv")
    write_table(frame.iloc[cut:], schema, folder / "holdout.csv")
    return folder / "train.csv", folder / "holdout.csv"
