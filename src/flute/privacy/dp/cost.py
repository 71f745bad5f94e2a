"""The privacy cost of one release: what a hub's ledger charges (URS-6/7/8, NF-HUF-1).

Kept free of dp-accounting so that the ledger and the CLI can handle costs without importing
the accountant's numerical stack.

Unit of privacy:
- "record": neighbouring datasets differ by adding or removing one patient's record (the
  relation dp-accounting's accountants use by default). This is what a hub's budget protects.
- "hub": neighbouring datasets differ by a whole hub's contribution (DP-FedAvg style). Hub-level
  (epsilon, delta)-DP implies record-level (epsilon, delta)-DP for every record of that hub, so a
  ledger may charge a hub-level cost against a record-level budget as it is (conservatively).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, get_args

PrivacyUnit = Literal["record", "hub"]
PRIVACY_UNITS: tuple[str, ...] = get_args(PrivacyUnit)


@dataclass(frozen=True)
class DpCost:
    """(epsilon, delta)-DP guarantee of one release, for one unit of privacy.

    `mechanism` names how it was obtained (e.g. "gaussian", "subsampled-gaussian-sgd") and
    `details` records the parameters (noise multiplier, sampling rate, steps, cross-checks) so a
    charge in the ledger can be audited later; it is descriptive, never read back for logic.
    """

    epsilon: float
    delta: float
    unit: PrivacyUnit
    mechanism: str
    details: Mapping[str, float | int | str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not (math.isfinite(self.epsilon) and self.epsilon >= 0):
            raise ValueError(f"DpCost epsilon must be a finite number >= 0, got {self.epsilon!r}")
        if not (math.isfinite(self.delta) and 0 <= self.delta < 1):
            raise ValueError(f"DpCost delta must lie in [0, 1), got {self.delta!r}")
        if self.unit not in PRIVACY_UNITS:
            raise ValueError(f"DpCost unit must be one of {PRIVACY_UNITS}, got {self.unit!r}")
        if not self.mechanism.strip():
            raise ValueError("DpCost mechanism must name the mechanism (e.g. 'gaussian')")

    def describe(self) -> str:
        return f"epsilon={self.epsilon:.6g}, delta={self.delta:.3g} per {self.unit} ({self.mechanism})"
