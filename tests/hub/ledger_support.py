"""Shared pieces of the ledger tests: a ledger on a freshly migrated hub store."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from flute.hub.ledger import PrivacyLedger
from flute.hub.store import HubStore
from flute.privacy.dp.cost import DpCost

STUDY, DATASET = "cspca-lr", "prostate-2026"


def cost(epsilon: float, delta: float = 0.0) -> DpCost:
    return DpCost(epsilon, delta, "record", "gaussian", {"sigma": 4.0})


@pytest.fixture
def ledger(hub_db_url_or_sqlite: str) -> Iterator[PrivacyLedger]:
    store = HubStore.create(hub_db_url_or_sqlite)
    try:
        yield PrivacyLedger(store.engine)
    finally:
        store.close()
