"""The consent check of a hub's study steps (F-SRS-9, F-SRS-7): before a hub computes anything
for a study on its own rows, the data owner must have granted that study the fields it uses.

Only hubs running from a hub home are checked: an in-memory source exists only inside the
process that registered it (embedded benchmarks and tests), where there is no data owner. The
check itself, its logging and its misuse rules are the hub's (`flute.hub.consent`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from flute.engine.sources import HUB_HOME_KEY, MEMORY_SOURCE_KEY
from flute.engine.spec import StudySpec


def require_consent(node_config: Mapping[str, object], spec: StudySpec, operation: str) -> None:
    """Raise `flute.hub.consent.ConsentRefused` unless the hub's owner consented to this use."""
    home = node_config.get(HUB_HOME_KEY)
    if node_config.get(MEMORY_SOURCE_KEY) is not None or not isinstance(home, str) or not home:
        return
    from flute.hub.consent import consent_guard

    consent_guard(Path(home), spec.study_id, spec.cohort.variables, operation)
