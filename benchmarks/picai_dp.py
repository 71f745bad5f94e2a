"""One differentially private PI-CAI study over the three centres (`benchmarks/picai.py` and
`benchmarks/picai_models.py`): each centre's privacy ledger lives in a temporary database with
the study's budget set to its (epsilon, delta), as a data owner would; the study charges it."""

from __future__ import annotations

import tempfile
from typing import Any

import numpy as np


def run_dp_study(spec: Any, centres: list[Any], columns: tuple[str, ...], epsilon: float, delta: float) -> tuple[Any, float, float]:
    """(study result, epsilon and delta charged to the first centre's ledger)."""
    from flute.cohort.table import StudyTable
    from flute.engine.apps import client_app, server_app
    from flute.engine.embedded import HubBinding, run_embedded, study_run_config
    from flute.engine.sources import InMemorySource
    from flute.hub.ledger import PrivacyLedger
    from flute.hub.store import HubStore

    with tempfile.TemporaryDirectory() as ledgers:
        urls = {}
        for c in centres:
            urls[c.name] = f"sqlite:///{ledgers}/{c.name}.sqlite3"
            store = HubStore.create(urls[c.name])
            PrivacyLedger(store.engine).set_budget(spec.study_id, c.name, epsilon, delta)
            store.close()
        hubs = [
            HubBinding(c.name, source=InMemorySource(StudyTable(columns, np.asarray(c.features), np.asarray(c.labels))), ledger_url=urls[c.name])
            for c in centres
        ]
        result = run_embedded(server_app, client_app, hubs, study_run_config(spec))
        store = HubStore.open(urls[centres[0].name])
        spent = PrivacyLedger(store.engine).budget(spec.study_id, centres[0].name)
        store.close()
    return result, spent.epsilon_spent, spent.delta_spent
