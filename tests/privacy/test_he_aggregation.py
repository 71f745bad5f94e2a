"""CKKS aggregation of statistics vectors (flute.privacy.he): the encrypted sum of 3 hubs equals
the plaintext sum within the stated precision, and the aggregator never holds the secret key
(NF-PIL-5, NF-SRS-2)."""

from __future__ import annotations

import numpy as np
import pytest
import tenseal as ts

from flute.engine.stats_workflow import aggregate_encrypted
from flute.engine.stats_variables import statistics_query
from flute.privacy.dp_stats import exact_statistics
from flute.privacy.he import RELATIVE_PRECISION, HeError, HeParameters, KeyHolder, add_encrypted, check_precision, encrypt, load_public_context

RNG = np.random.default_rng(7)


@pytest.fixture(scope="module")
def key_holder() -> KeyHolder:
    return KeyHolder()


def _hub_columns(n: int) -> dict[str, np.ndarray]:
    return {
        "psa": RNG.lognormal(1.8, 0.7, n),
        "ageAtBiopsy": RNG.normal(66, 7, n),
        "prostateVolume": RNG.normal(55, 20, n),
        "pirads": RNG.integers(1, 6, n).astype(float),
    }


@pytest.mark.parametrize("kind", ["variance", "histogram", "quantiles"])
def test_encrypted_sum_of_three_hubs_equals_the_plaintext_sum(key_holder: KeyHolder, kind: str) -> None:
    query = statistics_query(["psa", "ageAtBiopsy", "prostateVolume", "pirads"], kind)
    hubs = [exact_statistics(query, _hub_columns(n)).values for n in (400, 1500, 9000)]
    public = key_holder.public_context()
    total = aggregate_encrypted(public, [encrypt(public, values) for values in hubs])
    decrypted = key_holder.decrypt(total, query.size)
    plain = np.sum(hubs, axis=0)
    assert check_precision(decrypted, plain) <= RELATIVE_PRECISION
    assert np.max(np.abs(decrypted - plain) / np.maximum(np.abs(plain), 1.0)) < 1e-6


def test_the_public_context_holds_no_secret_key(key_holder: KeyHolder) -> None:
    context = load_public_context(key_holder.public_context())
    assert not context.is_private() and context.is_public()
    ciphertext = ts.ckks_vector_from(context, encrypt(key_holder.public_context(), np.array([1.0, 2.0])))
    with pytest.raises(ValueError, match="secret"):
        ciphertext.decrypt()  # whoever holds only the public context cannot decrypt


def test_aggregator_and_hubs_refuse_a_context_with_a_secret_key(key_holder: KeyHolder) -> None:
    private = key_holder._context.serialize(save_secret_key=True)  # noqa: SLF001 - what a careless key holder might send
    with pytest.raises(HeError, match="secret key"):
        add_encrypted(private, [encrypt(key_holder.public_context(), np.array([1.0]))])
    with pytest.raises(HeError, match="secret key"):
        encrypt(private, np.array([1.0]))


def test_malformed_inputs_are_refused(key_holder: KeyHolder) -> None:
    public = key_holder.public_context()
    with pytest.raises(HeError, match="not a serialised TenSEAL context"):
        load_public_context(b"not a context")
    with pytest.raises(HeError, match="not a CKKS ciphertext"):
        add_encrypted(public, [b"garbage"])
    with pytest.raises(HeError, match="slots"):
        encrypt(public, np.zeros(HeParameters().slots + 1))
    with pytest.raises(HeError, match="finite"):
        encrypt(public, np.array([1.0, np.nan]))
    with pytest.raises(HeError, match="nothing to add"):
        add_encrypted(public, [])


def test_precision_check_flags_a_wrong_result() -> None:
    with pytest.raises(HeError, match="relative"):
        check_precision(np.array([100.0, 2.0]), np.array([100.0, 2.1]))
