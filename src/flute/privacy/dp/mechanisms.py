"""Gaussian releases of clipped sums, centrally, distributed across hubs, or locally
(URS-6/7/8, NF-PIL-5, F-PIL-11).

Randomness: noise comes from a ChaCha20 keystream (`NoiseSource`). In production the key is 32
fresh bytes from the operating system's CSPRNG for every source, so an observer who sees many
releases cannot predict or reconstruct the noise (a seeded PRNG such as PCG64 can be recovered
from its outputs). `NoiseSource.deterministic_for_tests` derives the key from a seed and exists
only for reproducible tests; nothing in FLUTE's production paths calls it.
Known limitation: noise is floating-point Gaussian (Box-Muller on 53-bit uniforms); it does
not defend against floating-point side channels (Mironov 2012, Jin et al. 2022). A discrete
Gaussian would; the release sizes here (aggregates, not single records) make it a minor risk.

Sensitivity: neighbouring datasets differ by adding or removing one record. Each record's
contribution is clipped BEFORE summing: vectors to an L2 norm bound, scalars to [lower, upper].

Distributed noise (`NoisePlan`): with secure aggregation, the coordinator sees only the SUM of
the hubs' contributions. Each of n hubs adds an independent share N(0, sigma^2 / k) with
k = n - tolerated_colluders - tolerated_dropouts. The guarantee for an honest hub's records
holds as long as at most `tolerated_colluders` other hubs collude with the aggregator (they can
subtract the shares they know) and at most `tolerated_dropouts` hubs' shares are missing from
the sum: at least k honest shares remain, so the sum carries variance >= sigma^2. Trust
assumption of the default (k = n): every hub adds its share honestly and none drops out. The
local plan (k = 1) gives every hub the full sigma on its own output: valid even when the
aggregator sees each hub's contribution in the clear, at n times the total variance.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, replace

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

from flute.privacy.dp.accounting import gaussian_mechanism_cost
from flute.privacy.dp.cost import DpCost, PrivacyUnit

_KEY_BYTES = 32
_UNIFORM_BITS = 53  # a float64 mantissa


class NoiseSource:
    """Standard-normal samples from a ChaCha20 keystream (a cryptographic RNG).

    Build with `NoiseSource.secure()`; each instance has its own key, and its stream is never
    reused (one instance, one stream).
    """

    def __init__(self, key: bytes) -> None:
        if len(key) != _KEY_BYTES:
            raise ValueError(f"NoiseSource key must be {_KEY_BYTES} bytes, got {len(key)}")
        # 16-byte nonce = 4-byte block counter (starts at 0) + 12-byte nonce; the key is fresh.
        self._keystream = Cipher(algorithms.ChaCha20(key, bytes(16)), mode=None).encryptor()

    @classmethod
    def secure(cls) -> NoiseSource:
        """A source keyed from the operating system's CSPRNG: use this in production."""
        return cls(os.urandom(_KEY_BYTES))

    @classmethod
    def deterministic_for_tests(cls, seed: int) -> NoiseSource:
        """A reproducible source for tests ONLY: anyone who knows the seed knows the noise."""
        return cls(hashlib.sha256(f"flute-test-noise:{seed}".encode()).digest())

    def uniform_open(self, count: int) -> np.ndarray:
        """`count` uniforms in the open interval (0, 1), 53 random bits each."""
        words = np.frombuffer(self._keystream.update(bytes(8 * count)), dtype=np.uint64)
        return ((words >> np.uint64(64 - _UNIFORM_BITS)).astype(np.float64) + 0.5) / float(2**_UNIFORM_BITS)

    def standard_normal(self, shape: tuple[int, ...]) -> np.ndarray:
        """N(0, 1) samples of the given shape (Box-Muller: both outputs of each pair are used)."""
        size = int(np.prod(shape, dtype=np.int64))
        pairs = (size + 1) // 2
        radius = np.sqrt(-2.0 * np.log(self.uniform_open(pairs)))
        angle = 2.0 * np.pi * self.uniform_open(pairs)
        samples = np.concatenate([radius * np.cos(angle), radius * np.sin(angle)])
        return samples[:size].reshape(shape)


@dataclass(frozen=True)
class NoisePlan:
    """How the noise of one aggregate release is split among the hubs that contribute to it
    (see the module docstring for the trust assumption)."""

    contributors: int = 1
    tolerated_colluders: int = 0
    tolerated_dropouts: int = 0

    def __post_init__(self) -> None:
        if self.contributors < 1 or self.tolerated_colluders < 0 or self.tolerated_dropouts < 0:
            raise ValueError(f"NoisePlan needs contributors >= 1 and non-negative tolerances, got {self}")
        if self.guaranteed_shares < 1:
            raise ValueError(
                f"NoisePlan with {self.contributors} contributors cannot tolerate {self.tolerated_colluders} colluders "
                f"and {self.tolerated_dropouts} dropouts together: at least one honest, surviving hub must remain"
            )

    @classmethod
    def central(cls) -> NoisePlan:
        """One party (a single hub releasing its own statistic) adds all the noise."""
        return cls()

    @classmethod
    def distributed(cls, contributors: int, *, tolerated_colluders: int = 0, tolerated_dropouts: int = 0) -> NoisePlan:
        return cls(contributors, tolerated_colluders, tolerated_dropouts)

    @classmethod
    def local(cls, contributors: int) -> NoisePlan:
        """Every hub adds the full noise: for an aggregator that is not trusted (no secure
        aggregation, or all other hubs may collude)."""
        return cls(contributors, tolerated_colluders=contributors - 1)

    @property
    def guaranteed_shares(self) -> int:
        """How many honest noise shares the released sum is guaranteed to contain."""
        return self.contributors - self.tolerated_colluders - self.tolerated_dropouts

    def share_std(self, sigma: float) -> float:
        """The standard deviation one hub adds so that the guaranteed shares sum to sigma."""
        return sigma / float(np.sqrt(self.guaranteed_shares))

    def describe(self) -> str:
        return (
            f"{self.contributors} contributor(s), tolerating {self.tolerated_colluders} colluder(s) "
            f"and {self.tolerated_dropouts} dropout(s)"
        )


@dataclass(frozen=True)
class Release:
    """A noisy value ready to leave the hub, with the privacy it cost."""

    value: np.ndarray
    cost: DpCost


def clip_rows_l2(vectors: np.ndarray, max_norm: float) -> np.ndarray:
    """Scale every row (one record's contribution) down to an L2 norm of at most `max_norm`."""
    _check_finite_matrix(vectors)
    if not max_norm > 0:
        raise ValueError(f"max_norm must be > 0, got {max_norm!r}")
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    scale = np.ones_like(norms)
    too_long = norms > max_norm
    scale[too_long] = max_norm / norms[too_long]
    return vectors * scale


def clip_values(values: np.ndarray, lower: float, upper: float) -> np.ndarray:
    """Clamp each record's scalar to [lower, upper]. Missing values (NaN) are refused: the
    caller decides how they count, silently dropping them would change the sensitivity."""
    if not lower < upper:
        raise ValueError(f"clipping bounds need lower < upper, got [{lower}, {upper}]")
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1:
        raise ValueError(f"clip_values expects one value per record (1-D), got shape {values.shape}")
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{int(np.sum(~np.isfinite(values)))} value(s) are NaN or infinite; impute or exclude them first")
    return np.clip(values, lower, upper)


def gaussian_noise_share(shape: tuple[int, ...], sigma: float, plan: NoisePlan, noise: NoiseSource) -> np.ndarray:
    """This hub's share of the noise of an aggregate whose total noise std is `sigma`."""
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0, got {sigma!r}")
    return plan.share_std(sigma) * noise.standard_normal(shape)


def release_clipped_vector_sum(
    vectors: np.ndarray,
    clip_norm: float,
    noise_multiplier: float,
    delta: float,
    *,
    plan: NoisePlan | None = None,
    unit: PrivacyUnit = "record",
    noise: NoiseSource | None = None,
) -> Release:
    """Sum of the rows of `vectors` (one per record) after L2 clipping to `clip_norm`, plus this
    hub's Gaussian noise share for total std `noise_multiplier * clip_norm`. Histograms are
    the special case of one-hot rows with clip_norm 1."""
    clipped = clip_rows_l2(np.asarray(vectors, dtype=np.float64), clip_norm)
    return _noisy_sum(clipped.sum(axis=0), clip_norm, noise_multiplier, delta, plan, unit, noise)


def release_bounded_sum(
    values: np.ndarray,
    lower: float,
    upper: float,
    noise_multiplier: float,
    delta: float,
    *,
    plan: NoisePlan | None = None,
    unit: PrivacyUnit = "record",
    noise: NoiseSource | None = None,
) -> Release:
    """Sum of per-record scalars clamped to [lower, upper], plus Gaussian noise. Adding or
    removing one record changes the sum by at most max(|lower|, |upper|). A count is the sum
    of ones with bounds [0, 1]."""
    clipped = clip_values(values, lower, upper)
    sensitivity = max(abs(lower), abs(upper))
    return _noisy_sum(np.array([clipped.sum()]), sensitivity, noise_multiplier, delta, plan, unit, noise)


def _noisy_sum(
    total: np.ndarray,
    sensitivity: float,
    noise_multiplier: float,
    delta: float,
    plan: NoisePlan | None,
    unit: PrivacyUnit,
    noise: NoiseSource | None,
) -> Release:
    plan = plan or NoisePlan.central()
    sigma = noise_multiplier * sensitivity
    cost = gaussian_mechanism_cost(sensitivity, sigma, 1, delta, unit)
    cost = replace(cost, details={**cost.details, "noise_plan": plan.describe()})
    share = gaussian_noise_share(total.shape, sigma, plan, noise or NoiseSource.secure())
    return Release(value=total + share, cost=cost)


def _check_finite_matrix(vectors: np.ndarray) -> None:
    if vectors.ndim != 2:
        raise ValueError(f"expected one row per record (2-D array), got shape {vectors.shape}")
    if not np.all(np.isfinite(vectors)):
        raise ValueError("vectors contain NaN or infinite entries; impute or exclude those records first")
