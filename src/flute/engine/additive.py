"""Flat vectors for every additive hub answer, so that one secure sum (or a plain sum) of the
hubs' vectors decodes to the study-wide total (URS-2, F-SRS-10).

Each codec fixes a layout, the vector's length and its fixed-point encoding: real-valued sums
use the study's `pets.secagg` encoding; integer histograms are encoded exactly (scale 2^0).
Decoding checks the length, so a vector of another layout is refused, not misread.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from flute.evaluate.grid import ScoreGrid
from flute.evaluate.summary import ScoreSummary
from flute.learn.clipped_gradient import ClippedGradientSums
from flute.learn.logistic import LocalFit, NewtonSums
from flute.learn.preprocess import ColumnSums
from flute.privacy.secagg import FixedPoint

#: Integer sums (histogram counts, fixed-point logit sums) are added exactly: no scaling, and a
#: bound that leaves room for 2^12 hubs in the 2^63 signed range.
INTEGER_ENCODING = FixedPoint(clip_bound=2.0**50, scale_bits=0)


class LayoutError(ValueError):
    """A vector does not have the length of the layout it is decoded with."""


def _check_length(vector: np.ndarray, expected: int, what: str) -> None:
    if vector.shape != (expected,):
        raise LayoutError(f"{what}: expected a vector of {expected} values, got shape {vector.shape}")


@dataclass(frozen=True)
class ColumnSumsLayout:
    """[n_rows, n_incomplete, n_positive, n_observed (d), total (d), total_squares (d)]."""

    n_columns: int

    @property
    def length(self) -> int:
        return 3 + 3 * self.n_columns

    def encode(self, sums: ColumnSums, n_positive: int) -> np.ndarray:
        head = np.array([sums.n_rows, sums.n_incomplete, n_positive], dtype=np.float64)
        return np.concatenate([head, sums.n_observed.astype(np.float64), sums.total, sums.total_squares])

    def decode(self, vector: np.ndarray) -> tuple[ColumnSums, int]:
        _check_length(vector, self.length, "column sums")
        d = self.n_columns
        counts = np.rint(vector[: 3 + d]).astype(np.int64)
        sums = ColumnSums(int(counts[0]), counts[3:], vector[3 + d : 3 + 2 * d].copy(), vector[3 + 2 * d :].copy(), int(counts[1]))
        return sums, int(counts[2])


@dataclass(frozen=True)
class NewtonLayout:
    """[weight_total, loss_total, gradient (p), Hessian (p * p, row-major)]."""

    n_weights: int

    @property
    def length(self) -> int:
        return 2 + self.n_weights + self.n_weights**2

    def encode(self, sums: NewtonSums) -> np.ndarray:
        return np.concatenate([[sums.weight_total, sums.loss_total], sums.gradient, sums.hessian.ravel()])

    def decode(self, vector: np.ndarray) -> NewtonSums:
        _check_length(vector, self.length, "Newton sums")
        p = self.n_weights
        hessian = vector[2 + p :].reshape(p, p)
        return NewtonSums(float(vector[0]), float(vector[1]), vector[2 : 2 + p].copy(), (hessian + hessian.T) / 2.0)


@dataclass(frozen=True)
class WeightedFitLayout:
    """[weight_total, loss_total, weight_total * local weights (p)]: summed, it gives FedAvg's
    weighted average without any hub's own model."""

    n_weights: int

    @property
    def length(self) -> int:
        return 2 + self.n_weights

    def encode(self, fit: LocalFit) -> np.ndarray:
        return np.concatenate([[fit.weight_total, fit.loss_total], fit.weight_total * fit.weights])

    def decode(self, vector: np.ndarray) -> LocalFit:
        _check_length(vector, self.length, "weighted local models")
        weight_total = float(vector[0])
        return LocalFit(vector[2:] / weight_total, weight_total, float(vector[1]))


@dataclass(frozen=True)
class ClippedGradientLayout:
    """[scaled weight total, summed clipped gradient (p)] (`flute.learn.clipped_gradient`)."""

    n_weights: int

    @property
    def length(self) -> int:
        return 1 + self.n_weights

    def decode(self, vector: np.ndarray) -> ClippedGradientSums:
        _check_length(vector, self.length, "clipped gradient sums")
        return ClippedGradientSums.from_vector(vector)


@dataclass(frozen=True)
class ScoresLayout:
    """The four int64 arrays of a ScoreSummary, concatenated in `to_arrays()` order."""

    grid: ScoreGrid

    @property
    def length(self) -> int:
        return 4 * self.grid.n_bins

    def encode(self, summary: ScoreSummary) -> np.ndarray:
        return np.concatenate(list(summary.to_arrays().values())).astype(np.int64)

    def decode(self, vector: np.ndarray) -> ScoreSummary:
        _check_length(vector, self.length, "score histograms")
        names = ScoreSummary.empty(self.grid).to_arrays().keys()
        return ScoreSummary.from_arrays(dict(zip(names, np.split(np.rint(vector).astype(np.int64), 4))), self.grid)
