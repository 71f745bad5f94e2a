"""Fixed-point overflow policy, Shamir sharing and the wire format (F-PIL-11, URS-2)."""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flute.privacy.secagg import (
    ConfigError,
    EncryptedShares,
    FixedPoint,
    InputError,
    KeyAdvertisement,
    KeyDirectory,
    MalformedMessageError,
    MaskedInput,
    OverflowPolicyError,
    SecAggConfig,
    ShareDelivery,
    SurvivorConfirmation,
    SurvivorList,
    ThresholdError,
    UnmaskRequest,
    UnmaskResponse,
)
from flute.privacy.secagg import shamir

ids = st.integers(0, 2**64 - 2)
blobs = st.binary(max_size=80)
id_maps = st.dictionaries(ids, blobs, max_size=5)
id_tuples = st.lists(ids, max_size=6).map(tuple)
texts = st.text(max_size=20)
confirmations = st.builds(SurvivorConfirmation, ids, texts, blobs)
advertisements = st.builds(KeyAdvertisement, ids, texts, blobs, blobs, blobs)
messages = st.one_of(
    advertisements,
    st.builds(KeyDirectory, texts, st.lists(advertisements, max_size=3).map(tuple)),
    st.builds(EncryptedShares, ids, texts, id_maps),
    st.builds(ShareDelivery, ids, texts, id_maps),
    st.builds(SurvivorList, texts, id_tuples),
    confirmations,
    st.builds(UnmaskRequest, texts, id_tuples, id_tuples, st.lists(confirmations, max_size=3).map(tuple)),
    st.builds(UnmaskResponse, ids, texts, id_maps, id_maps),
)


@settings(max_examples=150, deadline=None)
@given(messages)
def test_every_message_round_trips_through_bytes(message) -> None:
    assert type(message).from_bytes(message.to_bytes()) == message


@settings(max_examples=150, deadline=None)
@given(messages, st.data())
def test_truncated_or_padded_bytes_are_rejected(message, data) -> None:
    encoded = message.to_bytes()
    cut = data.draw(st.integers(0, len(encoded) - 1))
    with pytest.raises(MalformedMessageError):
        type(message).from_bytes(encoded[:cut])
    with pytest.raises(MalformedMessageError, match="trailing"):
        type(message).from_bytes(encoded + b"\x00")


def test_masked_input_round_trips_with_its_vector() -> None:
    values = np.frombuffer(os.urandom(8 * 1000), dtype=np.uint64)
    decoded = MaskedInput.from_bytes(MaskedInput(7, "r", values).to_bytes())
    assert (decoded.hub_id, decoded.round_id) == (7, "r") and np.array_equal(decoded.values, values)


def test_a_message_of_another_kind_is_rejected() -> None:
    with pytest.raises(MalformedMessageError, match="expected a 'secagg.survivors' message"):
        SurvivorList.from_bytes(SurvivorConfirmation(1, "r", b"sig").to_bytes())


def test_overflow_policy_violation_names_the_fix() -> None:  # n * B * 2**scale must stay < 2**63
    encoding = FixedPoint(clip_bound=2.0**31, scale_bits=24)
    encoding.check_capacity(255)
    with pytest.raises(OverflowPolicyError, match=r"256 hubs .* >= 2\*\*63; lower clip_bound below"):
        encoding.check_capacity(256)
    with pytest.raises(OverflowPolicyError):
        SecAggConfig("r", tuple(range(256)), 4, threshold=200, encoding=encoding)


@settings(max_examples=60, deadline=None)
@given(st.integers(2, 200), st.integers(0, 40), st.floats(1e-3, 1e12))
def test_accepted_configs_cannot_wrap_around(n_hubs: int, scale_bits: int, clip_bound: float) -> None:
    """Whenever the policy accepts, n extreme inputs sum to the true value."""
    encoding = FixedPoint(clip_bound=clip_bound, scale_bits=scale_bits)
    try:
        encoding.check_capacity(n_hubs)
    except OverflowPolicyError:
        assert n_hubs * clip_bound * 2**scale_bits >= 2**63
        return
    for sign in (1.0, -1.0):
        extreme = encoding.encode(np.array([sign * clip_bound])).values
        total = np.zeros(1, dtype=np.uint64)
        for _ in range(n_hubs):
            total += extreme
        exact = n_hubs * sign * round(clip_bound * 2**scale_bits) / 2**scale_bits
        assert encoding.decode(total)[0] == pytest.approx(exact, rel=1e-12)


def test_encoding_counts_clipped_values_and_refuses_non_finite() -> None:
    encoding = FixedPoint(clip_bound=10.0, scale_bits=4)
    encoded = encoding.encode(np.array([-20.0, 3.03125, 11.0]))
    assert encoded.clipped == 2
    assert np.array_equal(encoding.decode(encoded.values), [-10.0, 3.0, 10.0])
    assert encoding.encode(np.array([2**63, 3], dtype=np.uint64)).clipped == 1
    assert encoding.encode(np.array([-(2**40), 3, 10], dtype=np.int64)).clipped == 1
    with pytest.raises(InputError, match="non-finite value at index 1"):
        encoding.encode(np.array([0.0, np.nan]))
    with pytest.raises(InputError, match="flatten"):
        encoding.encode(np.zeros((2, 2)))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"threshold": 2}, r"max\(2, 3\) <= t <= 5"),
        ({"threshold": 6}, "t <= 5"),
        ({"hub_ids": (1, 1, 2)}, "duplicates"),
        ({"round_id": ""}, "round_id"),
        ({"neighbours": 3, "hub_ids": tuple(range(10))}, "even number"),
    ],
)
def test_inconsistent_configs_are_refused(kwargs: dict, message: str) -> None:
    arguments = {"round_id": "r", "hub_ids": (1, 2, 3, 4, 5), "vector_length": 4, "threshold": 3} | kwargs
    with pytest.raises(ConfigError, match=message):
        SecAggConfig(**arguments)


@settings(max_examples=40, deadline=None)
@given(st.binary(min_size=32, max_size=32), st.integers(2, 9), st.data())
def test_any_t_shares_recover_the_secret(secret: bytes, n: int, data) -> None:
    threshold = data.draw(st.integers(1, n))
    holders = data.draw(st.lists(st.integers(0, 2**63), min_size=n, max_size=n, unique=True))
    shares = shamir.split(secret, holders, threshold)
    subset = data.draw(st.lists(st.sampled_from(holders), min_size=threshold, max_size=n, unique=True))
    assert shamir.combine({hub: shares[hub] for hub in subset}, threshold) == secret
    with pytest.raises(ThresholdError):
        shamir.combine({hub: shares[hub] for hub in subset[: threshold - 1]}, threshold)


def test_fewer_than_t_shares_are_independent_of_the_secret() -> None:
    """t - 1 shares of two different secrets are both uniform: their low bits look alike."""
    low_bits = [
        [shamir.split(secret, [1, 2, 3], 3)[1] & 1 for _ in range(2000)] for secret in (bytes(32), b"\xff" * 32)
    ]
    assert all(abs(np.mean(bits) - 0.5) < 0.05 for bits in low_bits)


@settings(max_examples=40, deadline=None)
@given(st.integers(3, 30), st.booleans(), st.floats(1.0, 1e6), st.integers(0, 30))
def test_config_round_trips_and_is_revalidated(n: int, sparse: bool, clip_bound: float, scale_bits: int) -> None:
    neighbours = 2 if sparse else None
    holders = 3 if sparse and n > 3 else n
    encoding = FixedPoint(clip_bound=clip_bound, scale_bits=scale_bits)
    config = SecAggConfig("study/r", tuple(range(n)), 10, holders // 2 + 1, encoding, neighbours)
    assert SecAggConfig.from_bytes(config.to_bytes()) == config

    def threshold_then_degree(threshold: int) -> bytes:  # adjacent uint64 fields of the encoding
        return threshold.to_bytes(8, "big") + (neighbours or 0).to_bytes(8, "big")

    weakened = config.to_bytes().replace(threshold_then_degree(config.threshold), threshold_then_degree(1))
    with pytest.raises(ConfigError, match="threshold 1 invalid"):
        SecAggConfig.from_bytes(weakened)
