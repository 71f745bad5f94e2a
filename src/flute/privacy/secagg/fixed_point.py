"""Fixed-point encoding of real vectors into Z_(2**64), the ring the masks live in.

Policy (URS-2, F-PIL-11: the masked sum must decode to the true sum, always):
- modulus M = 2**64, arithmetic on numpy uint64 with native wrap-around;
- a value x is clipped to [-B, B] and encoded as round(x * 2**scale_bits) in two's
  complement (int64 viewed as uint64);
- the sum of n encoded values has magnitude at most n * B * 2**scale_bits; if that is
  below M / 2 = 2**63 the signed reading of the modular sum is the exact integer sum,
  so overflow is impossible by construction. `FixedPoint.check_capacity` enforces it.
Integer inputs are scaled in int64 without passing through floats, so integer sums
are exact (decoded as float64, exact while the sum stays below 2**53 in magnitude).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from flute.privacy.secagg.errors import ConfigError, InputError, OverflowPolicyError

MODULUS_BITS = 64
SIGNED_HEADROOM = 2 ** (MODULUS_BITS - 1)
_CHUNK = 32_768  # values per encoding step: the float64 scratch stays in L2


@dataclass(frozen=True)
class EncodedVector:
    """An encoded input and how many of its entries had to be clipped to the bound."""

    values: npt.NDArray[np.uint64]
    clipped: int


@dataclass(frozen=True)
class FixedPoint:
    """Clip bound B and scale 2**scale_bits of the encoding (both public parameters)."""

    clip_bound: float
    scale_bits: int

    def __post_init__(self) -> None:
        if not (math.isfinite(self.clip_bound) and self.clip_bound > 0):
            raise ConfigError(f"clip_bound must be a positive finite number, got {self.clip_bound!r}")
        if not 0 <= self.scale_bits < MODULUS_BITS - 1:
            raise ConfigError(f"scale_bits must be in [0, 62], got {self.scale_bits}")

    @property
    def scale(self) -> int:
        return 1 << self.scale_bits

    @property
    def resolution(self) -> float:
        """Quantisation step; each encoded value is within half a step of its input."""
        return 1.0 / self.scale

    def check_capacity(self, n_hubs: int) -> None:
        """Raise unless n_hubs * B * scale < 2**63, i.e. no sum can wrap around."""
        worst = n_hubs * self.clip_bound * self.scale
        if not worst < SIGNED_HEADROOM:
            max_bound = SIGNED_HEADROOM / (n_hubs * self.scale)
            raise OverflowPolicyError(
                f"fixed-point overflow possible: {n_hubs} hubs * clip_bound {self.clip_bound:g} * "
                f"2**{self.scale_bits} = {worst:.3g} >= 2**63; lower clip_bound below {max_bound:.3g}, "
                f"lower scale_bits, or aggregate fewer hubs per round"
            )

    def encode(self, x: npt.NDArray[np.generic]) -> EncodedVector:
        """Clip to [-B, B] and encode; NaN or infinity is an error, not something to clip."""
        if x.ndim != 1:
            raise InputError(f"secure aggregation encodes flat vectors; got shape {x.shape} (flatten it first)")
        if x.dtype.kind in "biu":
            return self._encode_integers(x)
        if not np.issubdtype(x.dtype, np.floating):
            raise InputError(f"cannot encode dtype {x.dtype}; pass integers or floats")
        if x.shape[0] == 0:
            return EncodedVector(np.zeros(0, dtype=np.uint64), 0)
        lowest, highest = float(np.min(x)), float(np.max(x))  # NaN propagates; two passes, no copy
        if not (math.isfinite(lowest) and math.isfinite(highest)):
            non_finite = np.flatnonzero(~np.isfinite(x))
            bad = int(non_finite[0])
            raise InputError(f"input holds a non-finite value at index {bad} ({x[bad]!r}); it cannot be aggregated")
        bound = float(self.clip_bound)
        clipped = 0
        if lowest < -bound or highest > bound:
            clipped = int(np.count_nonzero(np.abs(x) > bound))
            x = np.clip(x, -bound, bound, dtype=np.float64)
        return EncodedVector(self._scaled_rounded(x), clipped)

    def _scaled_rounded(self, x: npt.NDArray[np.floating]) -> npt.NDArray[np.uint64]:
        """rint(x * scale) as int64 viewed as uint64, through a cache-sized float64 buffer: the
        same result as `np.rint(x * scale).astype(np.int64)` without two full-length temporaries."""
        out = np.empty(x.shape[0], dtype=np.int64)
        scratch = np.empty(min(x.shape[0], _CHUNK), dtype=np.float64)
        scale = float(self.scale)
        for start in range(0, x.shape[0], _CHUNK):
            part = out[start : start + _CHUNK]
            buffer = scratch[: part.shape[0]]
            np.multiply(x[start : start + _CHUNK], scale, out=buffer, dtype=np.float64)
            np.rint(buffer, out=buffer)
            np.copyto(part, buffer, casting="unsafe")
        return out.view(np.uint64)

    def _encode_integers(self, x: npt.NDArray[np.generic]) -> EncodedVector:
        bound = math.floor(self.clip_bound)
        if x.dtype.kind == "i":
            values = x.astype(np.int64)
            clipped = int(np.count_nonzero((values > bound) | (values < -bound)))
            np.clip(values, -bound, bound, out=values)
        else:  # unsigned or bool: compare before the cast so large uint64 cannot wrap negative
            clipped = int(np.count_nonzero(x > np.uint64(bound)))
            values = np.minimum(x, np.uint64(bound)).astype(np.int64)
        values *= self.scale
        return EncodedVector(values.view(np.uint64), clipped)

    def decode(self, total: npt.NDArray[np.uint64]) -> npt.NDArray[np.float64]:
        """Read a modular sum as signed and undo the scale."""
        return total.view(np.int64).astype(np.float64) / self.scale
