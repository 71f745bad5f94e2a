"""Expansion of 32-byte seeds into uniform uint64 mask vectors, added into an accumulator.

PRG: AES-256 in counter mode under the seed, initial counter block 0^96 || 0x00000002 with a
32-bit big-endian counter - exactly the keystream AES-256-GCM encrypts with under an all-zero
96-bit nonce, so it is produced through OpenSSL's GCM code path (the GHASH tag is never
finalised nor used). That path is the fastest AES-CTR keystream `cryptography` offers on CPUs
with VAES (about 1.5x its plain CTR mode), and the keystream is the same AES-CTR output: under a
fresh key indistinguishable from uniform bytes, so the little-endian uint64 words are uniform in
Z_(2**64). Each seed is derived for one purpose, one round and one pair only, so the fixed
counter block never repeats under the same key. GCM bounds one keystream to 2**36 - 32 bytes,
hence at most `MAX_VECTOR_LENGTH` values per vector.

Masks are applied chunk by chunk with every seed's keystream running side by side: a chunk of
the accumulator stays in cache while all masks are added to it, and no full-length keystream is
ever materialised (one pass over the accumulator instead of two per mask).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from cryptography.hazmat.primitives.ciphers import Cipher, CipherContext, algorithms, modes

from flute.privacy.secagg.errors import ConfigError

WORD_BYTES = 8
MAX_VECTOR_LENGTH = (2**36 - 32) // WORD_BYTES
CHUNK_WORDS = 32_768  # 256 KB of keystream: the accumulator chunk and keystream stay in L2
_BLOCK_SLACK = 15  # update_into needs a block of slack in its output buffer
_ZERO_NONCE = bytes(12)


def _keystream(seed: bytes) -> CipherContext:
    return Cipher(algorithms.AES(seed), modes.GCM(_ZERO_NONCE)).encryptor()


class MaskExpander:
    """Chunk-sized buffers reused for every mask applied to vectors of one length."""

    def __init__(self, length: int) -> None:
        if not 1 <= length <= MAX_VECTOR_LENGTH:
            raise ConfigError(f"mask length must be in [1, {MAX_VECTOR_LENGTH}] (one AES-GCM keystream), got {length}")
        self.length = length
        chunk = min(length, CHUNK_WORDS)
        self._zeros = bytes(chunk * WORD_BYTES)
        self._out = bytearray(chunk * WORD_BYTES + _BLOCK_SLACK)
        self._words = np.frombuffer(self._out, dtype="<u8", count=chunk)

    def apply(
        self, accumulator: npt.NDArray[np.uint64], added: Sequence[bytes] = (), subtracted: Sequence[bytes] = ()
    ) -> None:
        """accumulator += PRG(s) for s in `added`, -= PRG(s) for s in `subtracted`, mod 2**64, in place."""
        if accumulator.shape != (self.length,) or accumulator.dtype != np.uint64:
            raise ConfigError(f"accumulator must be uint64 of shape ({self.length},), got {accumulator.dtype} {accumulator.shape}")
        streams = [(_keystream(seed), np.add) for seed in added] + [(_keystream(seed), np.subtract) for seed in subtracted]
        chunk = self._words.shape[0]
        for start in range(0, self.length, chunk):
            target = accumulator[start : start + chunk]
            size = target.shape[0]
            zeros = self._zeros if size == chunk else self._zeros[: size * WORD_BYTES]
            words = self._words if size == chunk else self._words[:size]
            for stream, combine in streams:
                stream.update_into(zeros, self._out)
                combine(target, words, out=target)

    def mask(self, seed: bytes) -> npt.NDArray[np.uint64]:
        """PRG(seed) as a new vector (the whole mask; `apply` never builds one)."""
        vector = np.zeros(self.length, dtype=np.uint64)
        self.apply(vector, added=(seed,))
        return vector
