"""The three synthetic hubs of `engine_inputs`, each with a real SQLite ledger, for the DP study
tests (LR, MLP and trees are charged the same way)."""

from __future__ import annotations

from pathlib import Path

from flute.engine.apps import client_app, server_app
from flute.engine.embedded import HubBinding, run_embedded, study_run_config
from flute.engine.sources import InMemorySource
from flute.engine.spec import StudySpec
from flute.hub.ledger import PrivacyLedger
from flute.hub.store import HubStore

from .engine_inputs import HUB_NAMES, synthetic_hubs

#: Public bounds of the four synthetic variables (what a DP study declares).
BOUNDS = {"ageAtBiopsy": [40, 90], "psa": [0.1, 100], "prostateVolume": [10, 300], "pirads": [1, 5]}


def ledgers(tmp_path: Path, spec: StudySpec, epsilon: dict[str, float]) -> dict[str, str]:
    """A store per hub with the study's budget (epsilon 1 unless `epsilon` names the hub)."""
    urls = {}
    for name in HUB_NAMES:
        urls[name] = f"sqlite:///{tmp_path / name}.sqlite3"
        store = HubStore.create(urls[name])
        PrivacyLedger(store.engine).set_budget(spec.study_id, name, epsilon.get(name, 1.0), 1e-5)
        store.close()
    return urls


def ledger_of(url: str) -> PrivacyLedger:
    return PrivacyLedger(HubStore.open(url).engine)


def run(spec: StudySpec, urls: dict[str, str]):  # type: ignore[no-untyped-def]
    """The study on the embedded engine over the synthetic hubs bound to their ledgers."""
    hubs = [HubBinding(n, source=InMemorySource(t), ledger_url=urls[n]) for n, t in zip(HUB_NAMES, synthetic_hubs())]
    return run_embedded(server_app, client_app, hubs, study_run_config(spec))
