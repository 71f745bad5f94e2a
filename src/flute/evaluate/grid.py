"""The fixed score grid every hub bins its predicted risks on.

Federated validation never pools patient-level predictions (F-PIL-11, F-PIL-22): each hub
releases counts of predicted risks per grid bin, and the coordinator adds them. That only works
if every hub uses the *same* bins, so the grid is part of the study configuration, not data.

Why a logit-scale grid: predicted risks of a good csPCa model pile up near 0 and 1, where a
uniform grid on [0, 1] would lump many patients with very different odds into one bin. On the
logit scale equal-width bins give the same relative resolution everywhere. Bin width
w = 2 * logit_limit / n_bins (0.004 logit units with the defaults, i.e. a risk of 0.15 is
resolved to about +-0.0003). The logit limit of +-20 (risks 2e-9 ... 1 - 2e-9) keeps even very
confident models out of the open-ended tail bins, where distinct scores would be merged.

Why edges are snapped onto whole-percent risks: decision-curve net benefit and the operating
point at the 15 % biopsy threshold classify a patient as "biopsy" when risk >= threshold. If the
threshold is a bin edge, those counts are exact rather than approximated, so each whole-percent
risk (1 % ... 99 %) replaces the uniform edge nearest to it (moving it by at most w / 2).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

WHOLE_PERCENT_RISKS: tuple[float, ...] = tuple(k / 100 for k in range(1, 100))


def logit(p: np.ndarray | float) -> np.ndarray:
    """Log-odds of a probability (no clipping: callers clip first)."""
    p = np.asarray(p, dtype=np.float64)
    return np.log(p) - np.log1p(-p)


def expit(x: np.ndarray | float) -> np.ndarray:
    """Inverse logit, numerically stable for large |x|."""
    x = np.asarray(x, dtype=np.float64)
    return np.exp(-np.logaddexp(0.0, -x))


@dataclass(frozen=True)
class ScoreGrid:
    """Bins of predicted risk shared by all hubs of a study.

    `n_bins` bins cover [0, 1]. The interior edges are uniform on the logit scale over
    [-logit_limit, logit_limit]; the first and last bins are open-ended tails. Predicted risks
    beyond the limit are treated as risks *at* the limit for calibration (a predicted risk of
    1e-12 and one of 1e-10 are clinically the same statement).
    """

    n_bins: int = 10_000
    logit_limit: float = 20.0
    exact_risks: tuple[float, ...] = field(default=WHOLE_PERCENT_RISKS)

    def __post_init__(self) -> None:
        if self.n_bins < 4:
            raise ValueError(f"ScoreGrid: n_bins must be at least 4, got {self.n_bins}")
        if not (np.isfinite(self.logit_limit) and self.logit_limit > 0):
            raise ValueError(f"ScoreGrid: logit_limit must be a positive finite number, got {self.logit_limit}")
        bad = [r for r in self.exact_risks if not 0.0 < r < 1.0]
        if bad:
            raise ValueError(f"ScoreGrid: exact_risks must lie strictly between 0 and 1, got {bad}")
        snapped = [self._nearest_edge(risk) for risk in self.exact_risks]
        if len(set(snapped)) != len(snapped) or not np.all(np.diff(self.edges) > 0):
            raise ValueError(
                "ScoreGrid: exact_risks are too close together for the bin width "
                f"{self.bin_width:.4g} (two risks would snap onto the same edge); "
                "use more bins or fewer exact risks"
            )

    @property
    def bin_width(self) -> float:
        """Width of an interior bin on the logit scale."""
        return 2.0 * self.logit_limit / self.n_bins

    @cached_property
    def edges(self) -> np.ndarray:
        """n_bins + 1 increasing bin edges on the probability scale, edges[0] = 0, edges[-1] = 1.

        Bin k holds risks p with edges[k] <= p < edges[k + 1] (the last bin also holds p = 1).
        """
        interior = -self.logit_limit + self.bin_width * np.arange(1, self.n_bins)
        edges = np.concatenate(([0.0], expit(interior), [1.0]))
        for risk in self.exact_risks:
            edges[self._nearest_edge(risk)] = risk
        edges.setflags(write=False)
        return edges

    def _nearest_edge(self, risk: float) -> int:
        """Index of the uniform interior edge nearest to `risk` on the logit scale."""
        k = int(np.rint((float(logit(risk)) + self.logit_limit) / self.bin_width))
        if not 1 <= k <= self.n_bins - 1:
            raise ValueError(f"ScoreGrid: exact risk {risk} lies outside the logit range +-{self.logit_limit}")
        return k

    @property
    def min_risk(self) -> float:
        """Smallest risk used for calibration: lower risks are clipped to it."""
        return float(expit(-self.logit_limit))

    def bin_index(self, p: np.ndarray) -> np.ndarray:
        """Bin of each risk in `p` (already validated to lie in [0, 1])."""
        index = np.searchsorted(self.edges, p, side="right") - 1
        return np.minimum(index, self.n_bins - 1)

    def clipped_logit(self, p: np.ndarray) -> np.ndarray:
        """logit(p) clipped to +-logit_limit: the predictor of the calibration models."""
        with np.errstate(divide="ignore"):
            return np.clip(logit(p), -self.logit_limit, self.logit_limit)

    def edge_index(self, risk: float) -> int:
        """Index k with edges[k] == risk exactly; the threshold splits the grid without error."""
        matches = np.flatnonzero(self.edges == risk)
        if matches.size == 0:
            raise ValueError(
                f"risk threshold {risk} is not an edge of the score grid, so counts at it would be "
                "approximate; build the ScoreGrid with this risk in exact_risks "
                "(the default grid has every whole percent 0.01 ... 0.99)"
            )
        return int(matches[0])
