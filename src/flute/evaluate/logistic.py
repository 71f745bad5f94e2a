"""Maximum-likelihood logistic regression on weighted points, by Newton-Raphson.

Calibration models are fitted at the coordinator on histogram bins treated as weighted points
(one point per bin and outcome class, weighted by its count). The same fitter on unit-weight
raw points gives the exact patient-level fit, so federated and exact calibration differ only
in their data, never in their numerics.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from flute.evaluate.grid import expit


class LogisticFitError(ValueError):
    """The logistic model has no finite maximum-likelihood estimate for these data."""


@dataclass(frozen=True)
class LogisticFit:
    """Coefficients, their covariance (inverse observed information) and Newton iterations used."""

    coefficients: np.ndarray
    covariance: np.ndarray
    iterations: int

    @property
    def standard_errors(self) -> np.ndarray:
        return np.sqrt(np.diag(self.covariance))


def _log_likelihood(eta: np.ndarray, y: np.ndarray, weights: np.ndarray) -> float:
    # log sigma(eta) = -log(1 + e^-eta); log(1 - sigma(eta)) = -log(1 + e^eta)
    return float(-np.sum(weights * (y * np.logaddexp(0.0, -eta) + (1.0 - y) * np.logaddexp(0.0, eta))))


def fit_weighted_logistic(
    design: np.ndarray,
    y: np.ndarray,
    weights: np.ndarray,
    offset: np.ndarray | None = None,
    *,
    tolerance: float = 1e-10,
    max_iterations: int = 100,
) -> LogisticFit:
    """Fit logit P(y=1) = offset + design @ beta by weighted maximum likelihood.

    Newton steps with step halving keep the log-likelihood increasing; convergence is declared
    when the largest coefficient change is below `tolerance`. Raises LogisticFitError when the
    outcome is (quasi-)separated by the design - coefficients then run off to infinity and no
    calibration slope exists.
    """
    design = np.asarray(design, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    weights = np.asarray(weights, dtype=np.float64)
    offset = np.zeros(y.shape) if offset is None else np.asarray(offset, dtype=np.float64)
    if design.ndim != 2 or design.shape[0] != y.shape[0] or weights.shape != y.shape or offset.shape != y.shape:
        raise ValueError(
            f"fit_weighted_logistic: inconsistent shapes design {design.shape}, y {y.shape}, "
            f"weights {weights.shape}, offset {offset.shape}"
        )
    event_weight = float(np.sum(weights * y))
    if event_weight <= 0 or event_weight >= float(np.sum(weights)):
        raise LogisticFitError("logistic fit needs both outcomes present (events and non-events)")

    beta = np.zeros(design.shape[1])
    eta = offset + design @ beta
    log_likelihood = _log_likelihood(eta, y, weights)
    for iteration in range(1, max_iterations + 1):
        mu = expit(eta)
        gradient = design.T @ (weights * (y - mu))
        information = (design * (weights * mu * (1.0 - mu))[:, None]).T @ design
        try:
            step = np.linalg.solve(information, gradient)
        except np.linalg.LinAlgError as error:
            raise LogisticFitError(
                f"logistic fit: information matrix is singular ({error}); the fitted risks saturated at "
                "0/1, typically because the predictor values separate the outcomes"
            ) from error
        scale = 1.0
        while True:
            candidate = beta + scale * step
            candidate_eta = offset + design @ candidate
            candidate_ll = _log_likelihood(candidate_eta, y, weights)
            if candidate_ll >= log_likelihood - 1e-12 * abs(log_likelihood) or scale < 1e-10:
                break
            scale /= 2.0
        change = float(np.max(np.abs(candidate - beta)))
        beta, eta, log_likelihood = candidate, candidate_eta, candidate_ll
        if not np.all(np.isfinite(beta)) or np.max(np.abs(beta)) > 1e4:
            break
        if change < tolerance:
            mu = expit(eta)
            information = (design * (weights * mu * (1.0 - mu))[:, None]).T @ design
            covariance = np.linalg.pinv(information)
            if np.all(np.isfinite(covariance)) and np.all(np.diag(covariance) < 1e8):
                return LogisticFit(beta, covariance, iteration)
            break  # the likelihood went flat because fitted risks saturated at 0/1: no finite MLE
    raise LogisticFitError(
        "logistic fit did not converge: the predicted risks (quasi-)perfectly separate the outcomes, "
        "so the calibration model has no finite estimate"
    )
