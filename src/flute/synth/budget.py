"""The privacy cost of training the marginal generator (F-IMSD-13, URS-6/7/8).

Two Gaussian releases, both sums of per-record count vectors over the hubs: (1) SELECTION, all
2-way marginals, from which the tree is chosen (skipped when the tree is declared in the config);
(2) MEASUREMENT, the tree's edge marginals. Adding or removing one record changes each marginal by
one count in one cell, so m marginals have L2 sensitivity sqrt(m).

Gaussian mechanisms compose exactly (zero-concentrated / Gaussian DP): releases with
sensitivity/sigma ratios r_1, r_2 are together the Gaussian mechanism of ratio sqrt(r_1^2 + r_2^2).
The study's target (epsilon, delta) fixes the total ratio 1/s (s = the unit sigma of
`calibrate_gaussian_sigma`); selection gets the share `selection_share` of r^2 and measurement
the rest, so the composed cost is exactly the target (analytic Gaussian mechanism, dp-accounting).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from flute.privacy.dp.accounting import calibrate_gaussian_sigma, gaussian_mechanism_cost
from flute.privacy.dp.cost import DpCost

DEFAULT_DELTA = 1e-6
DEFAULT_SELECTION_SHARE = 0.25


@dataclass(frozen=True)
class MarginalBudget:
    """A target (epsilon, delta) per record and how much of it selects the tree."""

    epsilon: float
    delta: float = DEFAULT_DELTA
    selection_share: float = DEFAULT_SELECTION_SHARE

    def __post_init__(self) -> None:
        if not (math.isfinite(self.epsilon) and self.epsilon > 0):
            raise ValueError(f"epsilon must be a finite number > 0, got {self.epsilon!r}")
        if not 0 <= self.selection_share < 1:
            raise ValueError(f"selection_share must lie in [0, 1), got {self.selection_share!r}")

    def sigmas(self, selection_marginals: int, measurement_marginals: int) -> tuple[float | None, float]:
        """Noise std per count cell of the selection release (None when no selection, i.e. a
        declared tree: then measurement gets the whole budget) and of the measurement release."""
        if selection_marginals and self.selection_share == 0:
            raise ValueError("selecting the tree needs a selection_share > 0 of the budget; or declare the tree")
        unit = calibrate_gaussian_sigma(self.epsilon, self.delta, 1.0, 1)
        share = self.selection_share if selection_marginals else 0.0
        selection = math.sqrt(selection_marginals) * unit / math.sqrt(share) if selection_marginals else None
        return selection, math.sqrt(measurement_marginals) * unit / math.sqrt(1.0 - share)

    def cost(self, selection_marginals: int, measurement_marginals: int) -> DpCost:
        """What each hub's ledger charges for the whole training (both releases composed)."""
        selection, measurement = self.sigmas(selection_marginals, measurement_marginals)
        ratio_squared = measurement_marginals / measurement**2 + (selection_marginals / selection**2 if selection else 0.0)
        cost = gaussian_mechanism_cost(1.0, 1.0 / math.sqrt(ratio_squared), 1, self.delta, unit="record")
        details = {
            "selection_marginals": selection_marginals, "measurement_marginals": measurement_marginals,
            "selection_sigma": selection or 0.0, "measurement_sigma": measurement, "target_epsilon": self.epsilon,
        }
        return replace(cost, mechanism="gaussian-marginals", details={**cost.details, **details})
