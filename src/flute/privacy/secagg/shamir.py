"""Shamir t-out-of-n secret sharing over the prime field GF(2**521 - 1).

The secrets shared are 32-byte values (an X25519 private key and a mask seed), so the
field must exceed 2**256; the Mersenne prime 2**521 - 1 does with room to spare and
keeps one share a single field element (66 bytes). A holder's evaluation point is its
hub id + 1, so points are distinct and never 0 (0 is where the secret sits).
Fewer than t shares are uniformly distributed and reveal nothing about the secret.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping

from flute.privacy.secagg.errors import AuthenticationError, ThresholdError

PRIME = 2**521 - 1
SHARE_BYTES = (PRIME.bit_length() + 7) // 8
SECRET_BYTES = 32


def evaluation_point(hub_id: int) -> int:
    """The x-coordinate of the share held by `hub_id` (never 0, distinct per hub)."""
    return hub_id + 1


def split(secret: bytes, holders: Iterable[int], threshold: int) -> dict[int, int]:
    """Share `secret` among `holders` (hub ids) so that any `threshold` of them recover it."""
    if len(secret) != SECRET_BYTES:
        raise ValueError(f"secret must be {SECRET_BYTES} bytes, got {len(secret)}")
    holder_ids = sorted(set(holders))
    if not 1 <= threshold <= len(holder_ids):
        raise ThresholdError(
            f"cannot share a secret {threshold}-out-of-{len(holder_ids)}: need at least threshold holders"
        )
    coefficients = [int.from_bytes(secret, "big")] + [secrets.randbelow(PRIME) for _ in range(threshold - 1)]
    return {hub: _evaluate(coefficients, evaluation_point(hub)) for hub in holder_ids}


def combine(shares: Mapping[int, int], threshold: int) -> bytes:
    """Recover the secret from at least `threshold` shares keyed by holder hub id."""
    if len(shares) < threshold:
        raise ThresholdError(f"only {len(shares)} shares available, {threshold} needed to reconstruct")
    chosen = sorted(shares.items())[:threshold]
    points = [evaluation_point(hub) for hub, _ in chosen]
    secret = 0
    for i, (_, y_i) in enumerate(chosen):
        numerator, denominator = 1, 1
        for j, x_j in enumerate(points):
            if j != i:
                numerator = numerator * x_j % PRIME
                denominator = denominator * (x_j - points[i]) % PRIME
        secret = (secret + y_i * numerator * pow(denominator, -1, PRIME)) % PRIME
    if secret >= 2 ** (8 * SECRET_BYTES):
        raise AuthenticationError(
            "shares are inconsistent (tampered or from different secrets): the result is not a 32-byte secret"
        )
    return secret.to_bytes(SECRET_BYTES, "big")


def share_to_bytes(value: int) -> bytes:
    return value.to_bytes(SHARE_BYTES, "big")


def share_from_bytes(data: bytes) -> int:
    value = int.from_bytes(data, "big")
    if len(data) != SHARE_BYTES or value >= PRIME:
        raise ValueError(f"a share must be a {SHARE_BYTES}-byte field element")
    return value


def _evaluate(coefficients: list[int], x: int) -> int:
    result = 0
    for coefficient in reversed(coefficients):
        result = (result * x + coefficient) % PRIME
    return result
