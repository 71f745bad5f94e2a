"""What a hub releases for federated validation: additive histograms of its predicted risks.

Hub side: `summarise_scores(y, p, grid)` turns the hub's outcomes and predicted risks into a
`ScoreSummary`. Coordinator side: summaries are added (`+` / `combine`) and every metric in
`flute.evaluate.metrics` is computed from the sum alone - no patient-level prediction ever
leaves a hub (F-PIL-11, F-PIL-22).

Every released array is an int64 array indexed by grid bin, and the arrays of a union of
patients are the element-wise sums of the arrays of its parts, exactly. That makes the release
compatible with secure aggregation (integer sums modulo 2**k): the coordinator can learn the
pooled histogram without learning any single hub's.

Per-bin sums of logit(p) are kept (as fixed-point integers) per outcome class so calibration
models use each class's exact mean logit within a bin instead of the bin centre; the remaining
approximation error is second order in the bin width.

A single hub's summary is patient-level-adjacent (a bin holding one patient reveals that
patient's risk to within a bin and their outcome): releasing per-site summaries in the clear is
a study decision for the engine's PET configuration (F-SRS-4), not something this module makes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np

from flute.evaluate.grid import ScoreGrid

LOGIT_SUM_SCALE = 2**24
"""Fixed-point scale of released logit sums: one unit is 6e-8 on the logit scale.

With logits clipped to +-20 a patient contributes at most 3.4e8 units, so int64 sums are safe
for more than 2e10 patients per bin."""

_ARRAY_NAMES = ("event_counts", "nonevent_counts", "event_logit_sums", "nonevent_logit_sums")


@dataclass(frozen=True, eq=False)
class ScoreSummary:
    """Additive per-bin counts and fixed-point logit sums, split by outcome (1 = csPCa).

    event_counts[b] / nonevent_counts[b]: patients with / without the outcome whose risk is in bin b.
    event_logit_sums[b] / nonevent_logit_sums[b]: sum over those patients of the clipped
    logit(p), times LOGIT_SUM_SCALE, rounded per patient.
    """

    grid: ScoreGrid
    event_counts: np.ndarray
    nonevent_counts: np.ndarray
    event_logit_sums: np.ndarray
    nonevent_logit_sums: np.ndarray

    def __post_init__(self) -> None:
        for name in _ARRAY_NAMES:
            array = getattr(self, name)
            if not isinstance(array, np.ndarray) or array.dtype != np.int64:
                found = f"{type(array).__name__} of {getattr(array, 'dtype', 'no dtype')}"
                raise TypeError(f"ScoreSummary.{name} must be an int64 numpy array, got a {found}")
            if array.shape != (self.grid.n_bins,):
                raise ValueError(
                    f"ScoreSummary.{name} has shape {array.shape} but the grid has {self.grid.n_bins} bins; "
                    "hubs and coordinator must use the same ScoreGrid"
                )
            owned = array.copy()
            owned.setflags(write=False)
            object.__setattr__(self, name, owned)
        limit = self.grid.logit_limit * LOGIT_SUM_SCALE
        for counts_name, sums_name in (("event_counts", "event_logit_sums"), ("nonevent_counts", "nonevent_logit_sums")):
            counts, sums = getattr(self, counts_name), getattr(self, sums_name)
            if np.any(counts < 0):
                raise ValueError(
                    f"ScoreSummary.{counts_name} has negative counts; counts must be exact and non-negative"
                )
            # every patient adds at most logit_limit * scale in absolute value: anything beyond
            # means arrays were mixed up or summed with the wrong modulus
            if np.any(np.abs(sums.astype(np.float64)) > counts * limit + 1.0):
                raise ValueError(
                    f"ScoreSummary.{sums_name} is inconsistent with {counts_name} (a bin's logit sum exceeds "
                    "its count times the logit limit); check that the arrays were summed name by name as int64"
                )

    @property
    def n_events(self) -> int:
        return int(self.event_counts.sum())

    @property
    def n_nonevents(self) -> int:
        return int(self.nonevent_counts.sum())

    @property
    def n(self) -> int:
        return self.n_events + self.n_nonevents

    def mean_logits(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-bin mean clipped logit of events and of non-events (NaN where a bin is empty)."""
        means = []
        for sums, counts in ((self.event_logit_sums, self.event_counts),
                             (self.nonevent_logit_sums, self.nonevent_counts)):
            with np.errstate(invalid="ignore", divide="ignore"):
                means.append(np.where(counts > 0, sums / (counts * float(LOGIT_SUM_SCALE)), np.nan))
        return means[0], means[1]

    def __add__(self, other: ScoreSummary) -> ScoreSummary:
        if not isinstance(other, ScoreSummary):
            return NotImplemented
        if other.grid != self.grid:
            raise ValueError(
                "cannot add ScoreSummaries built on different grids "
                f"({self.grid.n_bins} bins/+-{self.grid.logit_limit} vs "
                f"{other.grid.n_bins} bins/+-{other.grid.logit_limit}); hubs must share the study's ScoreGrid"
            )
        return ScoreSummary(
            self.grid,
            *(getattr(self, name) + getattr(other, name) for name in _ARRAY_NAMES),
        )

    def equals(self, other: ScoreSummary) -> bool:
        """Exact equality of grid and every released array."""
        return self.grid == other.grid and all(
            np.array_equal(getattr(self, name), getattr(other, name)) for name in _ARRAY_NAMES
        )

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The released arrays (int64, one per name). Summing these dicts element-wise across
        hubs (in the clear or under secure aggregation) gives the combined summary's arrays."""
        return {name: getattr(self, name).copy() for name in _ARRAY_NAMES}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], grid: ScoreGrid) -> ScoreSummary:
        """Rebuild a summary from `to_arrays()` output (or an element-wise sum of several)."""
        missing = [name for name in _ARRAY_NAMES if name not in arrays]
        extra = sorted(set(arrays) - set(_ARRAY_NAMES))
        if missing or extra:
            raise ValueError(
                f"ScoreSummary.from_arrays: expected arrays {list(_ARRAY_NAMES)}; "
                f"missing {missing}, unexpected {extra}"
            )
        converted = {}
        for name in _ARRAY_NAMES:
            array = np.asarray(arrays[name])
            if not np.issubdtype(array.dtype, np.integer):
                raise TypeError(
                    f"ScoreSummary.from_arrays: {name} has dtype {array.dtype}; released arrays are integers"
                )
            converted[name] = array.astype(np.int64)
        return cls(grid, **converted)

    @classmethod
    def empty(cls, grid: ScoreGrid) -> ScoreSummary:
        return cls(grid, *(np.zeros(grid.n_bins, dtype=np.int64) for _ in _ARRAY_NAMES))


def combine(summaries: Iterable[ScoreSummary]) -> ScoreSummary:
    """Coordinator side: the summary of the union of the hubs' patients."""
    summaries = list(summaries)
    if not summaries:
        raise ValueError("combine: no summaries given; at least one hub must report")
    total = summaries[0]
    for summary in summaries[1:]:
        total = total + summary
    return total


def summarise_scores(y: np.ndarray, p: np.ndarray, grid: ScoreGrid) -> ScoreSummary:
    """Hub side: histogram the hub's predicted risks `p` by outcome `y` (1 = csPCa, 0 = not).

    Raises ValueError naming the first offending position if y is not 0/1, p is not a finite
    risk in [0, 1], or the lengths differ - a silently dropped patient would bias every metric.
    """
    y = np.asarray(y)
    p = np.asarray(p, dtype=np.float64)
    if y.ndim != 1 or p.ndim != 1 or y.shape != p.shape:
        raise ValueError(
            f"summarise_scores: y and p must be 1-D arrays of equal length, got shapes {y.shape} and {p.shape}"
        )
    bad_y = np.flatnonzero(~np.isin(y, (0, 1)))
    if bad_y.size:
        raise ValueError(
            f"summarise_scores: outcome y[{bad_y[0]}] = {y[bad_y[0]]} is not 0 or 1 "
            f"({bad_y.size} such values); drop unlabelled patients before scoring"
        )
    bad_p = np.flatnonzero(~(np.isfinite(p) & (p >= 0.0) & (p <= 1.0)))
    if bad_p.size:
        raise ValueError(
            f"summarise_scores: predicted risk p[{bad_p[0]}] = {p[bad_p[0]]} is not a probability in [0, 1] "
            f"({bad_p.size} such values); check the model output (missing predictors must be imputed first)"
        )
    events = y.astype(bool)
    bins = grid.bin_index(p)
    fixed_logits = np.rint(grid.clipped_logit(p) * LOGIT_SUM_SCALE).astype(np.int64)
    arrays = []
    for mask in (events, ~events):
        arrays.append(np.bincount(bins[mask], minlength=grid.n_bins).astype(np.int64))
    for mask in (events, ~events):
        sums = np.zeros(grid.n_bins, dtype=np.int64)
        np.add.at(sums, bins[mask], fixed_logits[mask])
        arrays.append(sums)
    return ScoreSummary(grid, *arrays)
