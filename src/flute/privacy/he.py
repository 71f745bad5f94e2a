"""Additively homomorphic aggregation of statistics vectors with CKKS (TenSEAL 0.3.18) (NF-PIL-5,
NF-SRS-2, F-SRS-4).

Trust model (TenSEAL has no threshold decryption, so there is ONE secret key):
- the KEY HOLDER (the researcher's decryptor: `KeyHolder`) creates the CKKS context and keeps the
  secret key; it hands out only the PUBLIC context (`public_context()`: encryption parameters
  and public key, no secret key, no Galois or relinearisation keys - sums need neither);
- every hub encrypts its vector of sums under that public context (`encrypt`);
- the AGGREGATOR adds the ciphertexts (`add_encrypted`) with the public context only: it can
  neither decrypt a hub's vector nor the sum (it refuses a context that holds a secret key);
- the key holder decrypts the aggregate only (`KeyHolder.decrypt`).
Hubs' individual vectors stay confidential as long as the aggregator and the key holder do not
collude: a key holder who obtained a hub's ciphertext could decrypt it. Deploy them as separate
parties (e.g. coordinator server vs the researcher's workstation); in the embedded engine both
run in one process, which demonstrates the protocol but gives no separation. HE protects values
in transit and at the aggregator, not the released sum: the key holder learns the exact pooled
sums (add DP noise before encrypting when the pooled result itself must be private).

Parameters (`HeParameters`, justified):
- poly modulus degree N = 8192: 4096 slots per ciphertext (a study's statistics vector is a few
  hundred values) and 128-bit security for a coefficient modulus up to 218 bits (HE standard);
- coefficient modulus primes [60, 40, 60] = 160 bits: additions consume no level, so one 40-bit
  middle prime suffices; the 60-bit outer primes leave 2^(100-40) headroom for the scaled values;
- scale 2^40: the encoding/encryption error is about 1e-8 absolute per slot for fresh
  ciphertexts and grows only additively with the number of hubs, so a sum of counts and
  (centred) sums of squares up to ~1e12 keeps a relative error far below 1e-6
  (`check_precision` verifies this against the plaintext sum in the tests and benchmark).
Serialisation is TenSEAL's protobuf bytes; vectors longer than the slot count are refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import tenseal as ts

#: Relative precision the parameters guarantee for sums the statistics produce (checked).
RELATIVE_PRECISION = 1e-6


class HeError(ValueError):
    """A ciphertext, context or vector that cannot be used as asked; the message says why."""


@dataclass(frozen=True)
class HeParameters:
    poly_modulus_degree: int = 8192
    coeff_mod_bit_sizes: tuple[int, ...] = (60, 40, 60)
    scale_bits: int = 40

    @property
    def slots(self) -> int:
        return self.poly_modulus_degree // 2


def _tenseal():  # type: ignore[no-untyped-def]
    import tenseal

    return tenseal


class KeyHolder:
    """Creates the CKKS keys and is the only party that can decrypt."""

    def __init__(self, parameters: HeParameters = HeParameters()) -> None:
        ts = _tenseal()
        self.parameters = parameters
        self._context = ts.context(
            ts.SCHEME_TYPE.CKKS, poly_modulus_degree=parameters.poly_modulus_degree, coeff_mod_bit_sizes=list(parameters.coeff_mod_bit_sizes)
        )
        self._context.global_scale = 2**parameters.scale_bits

    def public_context(self) -> bytes:
        """What hubs and the aggregator get: parameters and the public key only."""
        return self._context.serialize(save_public_key=True, save_secret_key=False, save_galois_keys=False, save_relin_keys=False)

    def decrypt(self, ciphertext: bytes, length: int) -> np.ndarray:
        """The plaintext of an (aggregated) ciphertext, its first `length` slots."""
        vector = _vector(self._context, ciphertext)
        values = np.asarray(vector.decrypt(), dtype=np.float64)
        if values.shape[0] < length:
            raise HeError(f"ciphertext holds {values.shape[0]} values, {length} were expected")
        return values[:length]


def load_public_context(data: bytes) -> ts.Context:
    """A context for encrypting and adding; refused if it carries a secret key (whoever sent it
    would be handing out decryption, or the wrong party would be holding it)."""
    ts = _tenseal()
    try:
        context = ts.context_from(data)
    except Exception as exc:  # noqa: BLE001 - TenSEAL raises bare exceptions for malformed bytes
        raise HeError(f"not a serialised TenSEAL context ({exc})") from exc
    if context.is_private():
        raise HeError("the context holds a secret key; hubs and the aggregator must only ever get the public context")
    return context


def encrypt(public_context: bytes, values: np.ndarray, *, slots: int = HeParameters().slots) -> bytes:
    """A hub's vector, encrypted under the key holder's public key, in ONE ciphertext (`slots`:
    the slot count of the key holder's parameters; TenSEAL would otherwise split silently)."""
    context = load_public_context(public_context)
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1 or values.size == 0 or not np.all(np.isfinite(values)):
        raise HeError(f"can encrypt a non-empty 1-d vector of finite values, got shape {values.shape}")
    if values.size > slots:
        raise HeError(f"vector of {values.size} values exceeds the {slots} slots of one ciphertext; query fewer variables")
    return _tenseal().ckks_vector(context, values.tolist()).serialize()


def add_encrypted(public_context: bytes, ciphertexts: Sequence[bytes]) -> bytes:
    """The aggregator's step: the encrypted sum of the hubs' ciphertexts, computed without any
    secret key (the context is checked to be public-only)."""
    if not ciphertexts:
        raise HeError("nothing to add: no ciphertexts")
    context = load_public_context(public_context)
    total = _vector(context, ciphertexts[0])
    for ciphertext in ciphertexts[1:]:
        total += _vector(context, ciphertext)
    return total.serialize()


def check_precision(decrypted: np.ndarray, expected: np.ndarray, relative: float = RELATIVE_PRECISION) -> float:
    """The largest error of `decrypted` against `expected`, relative to max(|expected|, 1)
    per value; raises HeError above `relative`."""
    error = float(np.max(np.abs(decrypted - expected) / np.maximum(np.abs(expected), 1.0))) if expected.size else 0.0
    if error > relative:
        raise HeError(f"CKKS result off by {error:.3g} relative, above the stated precision {relative:g}")
    return error


def _vector(context: ts.Context, ciphertext: bytes) -> ts.CKKSVector:
    try:
        return _tenseal().ckks_vector_from(context, ciphertext)
    except Exception as exc:  # noqa: BLE001 - TenSEAL raises bare exceptions for malformed bytes
        raise HeError(f"not a CKKS ciphertext of this context ({exc})") from exc
