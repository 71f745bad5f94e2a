"""Marginal calibration of a trained generator's numeric outputs (post-processing, no privacy cost).

The encoder maps every numeric column to normal scores, so the real (pooled) scores are N(0, 1)
by construction. A generator trained with DP-SGD learns the joint structure only roughly and its
raw numeric scores come out too wide or shifted (measured on PI-CAI at epsilon 3: KS ~0.5 per
numeric column). After training, the generator draws `CALIBRATION_ROWS` unconditional rows from
ITSELF and fits, per numeric dimension, the monotone map from its raw-score quantiles to the
N(0, 1) quantiles; every later draw (conditional or not) goes through that same fixed map before
decoding. It reads no data, so it is post-processing of the released model: free under DP. Being
monotone per dimension, it keeps the model's ranks and dependence; guidance intervals are mapped
back through its inverse so conditional draws are steered in the model's own scale.

API: `MarginalCalibration.fit(raw)`, `.apply(raw)`, `.invert(z)`, `.to_json()` / `.from_json()`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

#: Rows a generator draws from itself to fit its calibration.
CALIBRATION_ROWS = 20_000
#: Quantile levels of the map: the tails beyond them are clamped (|z| <= 3.29, 0.05 % per side).
LEVELS = np.linspace(0.0005, 0.9995, 401)


@dataclass(frozen=True)
class MarginalCalibration:
    """Per numeric dimension, the raw-score quantiles at `LEVELS` (strictly increasing)."""

    raw_quantiles: tuple[tuple[float, ...], ...]

    @classmethod
    def fit(cls, raw: np.ndarray) -> MarginalCalibration:
        quantiles = []
        for column in np.asarray(raw, dtype=np.float64).T:
            found = np.quantile(column[np.isfinite(column)], LEVELS)
            # strictly increasing even where the model put many rows on one value
            quantiles.append(tuple(np.maximum.accumulate(found) + np.arange(len(LEVELS)) * 1e-9))
        return cls(tuple(quantiles))

    def apply(self, raw: np.ndarray) -> np.ndarray:
        """Normal scores of raw model scores (rows x numeric dimensions)."""
        return self._map(raw, forward=True)

    def invert(self, z: np.ndarray) -> np.ndarray:
        """Raw model scores of normal scores (one vector per dimension, or rows x dimensions);
        infinite bounds stay infinite."""
        return self._map(z, forward=False)

    def _map(self, values: np.ndarray, *, forward: bool) -> np.ndarray:
        from scipy.special import ndtri

        values = np.asarray(values, dtype=np.float64)
        if not self.raw_quantiles:
            return values.copy()
        rows = values.reshape(-1, len(self.raw_quantiles))  # a 1-D input: one value per dimension
        out = rows.copy()
        target = ndtri(LEVELS)
        for index, quantiles in enumerate(self.raw_quantiles):
            finite = np.isfinite(rows[:, index])
            source, destination = (quantiles, target) if forward else (target, quantiles)
            out[finite, index] = np.interp(rows[finite, index], source, destination)
        return out.reshape(values.shape)

    def to_json(self) -> list[list[float]]:
        return [list(q) for q in self.raw_quantiles]

    @classmethod
    def from_json(cls, data: Sequence[Sequence[Any]]) -> MarginalCalibration:
        quantiles = tuple(tuple(float(v) for v in q) for q in data)
        if any(len(q) != len(LEVELS) or np.any(np.diff(q) <= 0) for q in quantiles):
            raise ValueError(f"a calibration needs {len(LEVELS)} strictly increasing quantiles per numeric dimension")
        return cls(quantiles)
