"""Privacy-ledger helpers for tests over real hub homes: set a study's budget at every hub, read
back a hub's charges for a study (one place, so every area sets and reads budgets the same way)."""

from __future__ import annotations

from pathlib import Path

from flute.hub.ledger import PrivacyLedger
from flute.hub.node import open_hub


def set_budgets(homes: list[Path], study: str, epsilon: float, delta: float = 1e-5) -> None:
    """Give `study` the budget (epsilon, delta) at every hub home."""
    for home in homes:
        with open_hub(home) as hub:
            PrivacyLedger(hub.store.engine).set_budget(study, hub.config.name, epsilon, delta)


def charges(home: Path, study: str) -> list[tuple[float, str]]:
    """(epsilon, status) of the hub's most recent charges to `study`, newest first."""
    with open_hub(home) as hub:
        return [(c.epsilon, c.status.value) for c in PrivacyLedger(hub.store.engine).recent_charges(100) if c.study == study]
