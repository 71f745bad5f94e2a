"""The mask PRG and the chunked fixed-point encoding equal their plain definitions (URS-2, F-PIL-11).

Both run chunk by chunk for speed; these tests pin them to the one-shot definitions the
protocol documents, across chunk boundaries, so the optimisation cannot change a mask or a code.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from flute.privacy.secagg import ConfigError, FixedPoint
from flute.privacy.secagg.prg import CHUNK_WORDS, MAX_VECTOR_LENGTH, MaskExpander

LENGTHS = (1, 7, CHUNK_WORDS, 2 * CHUNK_WORDS + 3)


def aes256_ctr_words(seed: bytes, length: int) -> np.ndarray:
    """The documented PRG: AES-256-CTR keystream from counter block 0^96 || 2, as little-endian uint64."""
    counter = bytes(12) + (2).to_bytes(4, "big")
    stream = Cipher(algorithms.AES(seed), modes.CTR(counter)).encryptor().update(bytes(8 * length))
    return np.frombuffer(stream, dtype="<u8").astype(np.uint64)


@pytest.mark.parametrize("length", LENGTHS)
def test_mask_is_the_aes256_ctr_keystream(length: int) -> None:
    seed = os.urandom(32)
    assert np.array_equal(MaskExpander(length).mask(seed), aes256_ctr_words(seed, length))


@pytest.mark.parametrize("length", LENGTHS)
def test_apply_adds_and_subtracts_every_mask_modulo_2_64(length: int) -> None:
    rng = np.random.default_rng(length)
    start = rng.integers(0, 2**64, size=length, dtype=np.uint64)
    added, subtracted = [os.urandom(32) for _ in range(3)], [os.urandom(32) for _ in range(2)]
    expected = start.copy()
    for seed in added:
        expected += aes256_ctr_words(seed, length)
    for seed in subtracted:
        expected -= aes256_ctr_words(seed, length)
    accumulator = start.copy()
    MaskExpander(length).apply(accumulator, added=added, subtracted=subtracted)
    assert np.array_equal(accumulator, expected)


def test_lengths_and_accumulators_outside_the_prg_are_refused() -> None:
    with pytest.raises(ConfigError, match="mask length"):
        MaskExpander(MAX_VECTOR_LENGTH + 1)
    with pytest.raises(ConfigError, match="uint64 of shape"):
        MaskExpander(4).apply(np.zeros(4, dtype=np.int64), added=[os.urandom(32)])


@settings(max_examples=40, deadline=None)
@given(
    values=hnp.arrays(
        st.sampled_from([np.float32, np.float64]),
        st.integers(1, CHUNK_WORDS + 40),
        elements=st.floats(-(2.0**21), 2.0**21, width=32),
    ),
    scale_bits=st.integers(0, 30),
)
def test_chunked_encoding_equals_the_one_shot_definition(values: np.ndarray, scale_bits: int) -> None:
    encoding = FixedPoint(clip_bound=2.0**20, scale_bits=scale_bits)
    clipped = np.clip(values.astype(np.float64), -(2.0**20), 2.0**20)
    expected = np.rint(clipped * float(2**scale_bits)).astype(np.int64).view(np.uint64)
    encoded = encoding.encode(values)
    assert np.array_equal(encoded.values, expected)
    assert encoded.clipped == int(np.count_nonzero(np.abs(values.astype(np.float64)) > 2.0**20))
