"""The PyTorch MLP keeps the flat parameter layout every artifact carries, and its DP-SGD step
(F-HUF-7, URS-6/7/8) computes the exact full-batch step when noise and clipping are off, clips
every row's gradient, and draws its noise and samples from the cryptographic source."""

from __future__ import annotations

import numpy as np
import pytest

from flute.learn.federated_estimators import FederatedMlp
from flute.learn.mlp import DpSgd, MlpModel, MlpParams, dp_mlp_descent, initial_vector, local_mlp_descent, n_parameters
from flute.privacy.dp.mechanisms import NoiseSource

from .learn_inputs import pooled, three_hubs, without_missing

PARAMS = MlpParams(hidden_units=3, l2=0.05, activation="tanh")


def data() -> tuple[np.ndarray, np.ndarray]:
    x, y = pooled(without_missing(three_hubs()))
    return x[:120], y[:120]


def test_the_network_reads_the_documented_flat_layout() -> None:
    """[W1 (n x h, row-major), b1, w2, b2]: what `flute.learn.models` and packaged artifacts carry."""
    x, _ = data()
    vector = np.random.default_rng(0).normal(size=n_parameters(4, 3))
    first, bias, second, out = vector[:12].reshape(4, 3), vector[12:15], vector[15:18], vector[18]
    expected = 1.0 / (1.0 + np.exp(-(np.tanh(x @ first + bias) @ second + out)))
    np.testing.assert_allclose(MlpModel(vector, 4, 3, "tanh").predict_risk(x), expected, rtol=1e-12)
    with pytest.raises(ValueError, match="19 parameters"):
        MlpModel(vector[:-1], 4, 3, "tanh").predict_risk(x)


def test_dp_sgd_without_noise_sampling_or_clipping_is_the_full_batch_step() -> None:
    x, y = data()
    start = initial_vector(4, PARAMS, seed=2)
    exact = local_mlp_descent(start, x, y, (1.0, 2.0), PARAMS, epochs=3, learning_rate=0.5, proximal_mu=0.1)
    open_dp = DpSgd(noise_multiplier=1e-12, max_grad_norm=1e6, sampling_rate=1.0)
    private = dp_mlp_descent(start, x, y, (1.0, 2.0), PARAMS, open_dp, NoiseSource.deterministic_for_tests(1), epochs=3, learning_rate=0.5, proximal_mu=0.1)
    np.testing.assert_allclose(private.weights, exact.weights, atol=1e-9)
    assert private.weight_total == exact.weight_total and np.isnan(private.loss_total)


def test_each_rows_gradient_is_clipped() -> None:
    """With a tiny clipping norm C the data move the vector by at most lr * n * C / (q W) = lr * C
    (q = 1, class weights 1, so W = n): only the (data-independent) penalty step remains."""
    x, y = data()
    start = initial_vector(4, PARAMS, seed=2)
    clip = 1e-8
    tight = DpSgd(noise_multiplier=1e-12, max_grad_norm=clip, sampling_rate=1.0)
    private = dp_mlp_descent(start, x, y, (1.0, 1.0), PARAMS, tight, NoiseSource.deterministic_for_tests(1), epochs=1, learning_rate=0.5)
    mask = np.zeros_like(start)
    mask[:12], mask[15:18] = 1.0, 1.0
    penalty_only = start - 0.5 * PARAMS.l2 * mask * start
    assert np.linalg.norm(private.weights - penalty_only) <= 0.5 * clip + 1e-12


def test_noise_comes_from_the_noise_source() -> None:
    x, y = data()
    start = initial_vector(4, PARAMS, seed=2)
    noisy = DpSgd(noise_multiplier=1.0, max_grad_norm=1.0, sampling_rate=0.2)

    def fit(noise: NoiseSource) -> np.ndarray:
        return dp_mlp_descent(start, x, y, (1.0, 1.0), PARAMS, noisy, noise, epochs=1, learning_rate=0.5).weights

    np.testing.assert_array_equal(fit(NoiseSource.deterministic_for_tests(7)), fit(NoiseSource.deterministic_for_tests(7)))
    assert not np.array_equal(fit(NoiseSource.secure()), fit(NoiseSource.secure()))
    with pytest.raises(ValueError, match="sampling_rate in"):
        DpSgd(1.0, 1.0, 0.0)


def test_federated_dp_sgd_mlp_still_learns() -> None:
    hubs = without_missing(three_hubs())
    x, y = pooled(hubs)
    from flute.evaluate.exact import exact_auroc

    model = FederatedMlp(PARAMS, max_rounds=5, local_epochs=1, learning_rate=1.0, dp=DpSgd(0.5, 1.0, 0.25), seed=1).fit_partitions(hubs)
    assert exact_auroc(y, model.predict_proba(x)[:, 1]) > 0.75
