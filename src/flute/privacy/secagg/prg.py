"""Expansion of a 32-byte seed into a uniform uint64 mask vector (AES-256-CTR).

AES-CTR keystream under a fresh key is indistinguishable from uniform bytes, hence
the resulting uint64 words are uniform in Z_(2**64). Each seed is derived for one
purpose, one round and one pair only, so the fixed all-zero counter block never repeats
under the same key. With AES-NI this runs at memory speed (~1 ms per 1e6 words).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

WORD_BYTES = 8
_ZERO_COUNTER = bytes(16)


class MaskExpander:
    """Reusable buffers for expanding many seeds to vectors of the same length.

    Allocating 8 MB of zeros per mask would double the cost of a masking step, so one
    expander serves all masks of a hub's masked input (and the server's unmasking).
    """

    def __init__(self, length: int) -> None:
        self.length = length
        self._zeros = bytes(length * WORD_BYTES)
        self._out = bytearray(length * WORD_BYTES + 15)  # update_into needs a block of slack

    def expand(self, seed: bytes) -> npt.NDArray[np.uint64]:
        """A read-only view of the mask for `seed`, valid until the next call."""
        encryptor = Cipher(algorithms.AES(seed), modes.CTR(_ZERO_COUNTER)).encryptor()
        encryptor.update_into(self._zeros, self._out)
        return np.frombuffer(self._out, dtype="<u8", count=self.length)

    def add_into(self, accumulator: npt.NDArray[np.uint64], seed: bytes) -> None:
        np.add(accumulator, self.expand(seed), out=accumulator)

    def subtract_into(self, accumulator: npt.NDArray[np.uint64], seed: bytes) -> None:
        np.subtract(accumulator, self.expand(seed), out=accumulator)
