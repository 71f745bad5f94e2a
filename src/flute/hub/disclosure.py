"""The data owner's statistical disclosure policy: the smallest count this hub releases
(F-PIL-11: statistics never reveal small groups of patients).

Kept in the hub's config file as an optional table, so the owner sees and edits it beside the
hub's other settings:

    [disclosure]
    min_cell_size = 10

Without the table the default applies (10, a common rule in health statistics offices).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

import tomli_w

from flute.hub.home import CONFIG_FILE, HubHomeError, load_config

DEFAULT_MIN_CELL_SIZE = 10
_TABLE = "disclosure"


@dataclass(frozen=True)
class DisclosurePolicy:
    """Counts below `min_cell_size` are suppressed (zeroed and flagged), never released raw."""

    min_cell_size: int = DEFAULT_MIN_CELL_SIZE

    def __post_init__(self) -> None:
        if isinstance(self.min_cell_size, bool) or not isinstance(self.min_cell_size, int) or self.min_cell_size < 1:
            raise HubHomeError(f"[{_TABLE}] min_cell_size must be an integer >= 1, got {self.min_cell_size!r}")


def load_policy(home: Path) -> DisclosurePolicy:
    load_config(home)  # a clear error if there is no hub here
    table = tomllib.loads((home / CONFIG_FILE).read_text(encoding="utf-8")).get(_TABLE, {})
    if not isinstance(table, dict) or set(table) - {"min_cell_size"}:
        raise HubHomeError(f"{home / CONFIG_FILE}: [{_TABLE}] may only hold min_cell_size, got {table!r}")
    return DisclosurePolicy(**table)


def save_policy(home: Path, policy: DisclosurePolicy) -> None:
    """Write the policy into the hub's config, keeping everything else in it."""
    load_config(home)
    path = home / CONFIG_FILE
    document = tomllib.loads(path.read_text(encoding="utf-8"))
    document[_TABLE] = {"min_cell_size": policy.min_cell_size}
    path.write_text(tomli_w.dumps(document), encoding="utf-8")
