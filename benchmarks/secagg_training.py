"""The local training step of the secure-aggregation benchmark's round (benchmarks/secagg.py).

Model: a PyTorch MLP 7 -> h -> h -> 1 (ReLU), float32, whose width h makes its parameter count
h**2 + 10 h + 1 the nearest to the round's target (h = 27: 1,000; h = 311: 99,832;
h = 995: 999,976 parameters). The 7 inputs are the study variables; the first layer widens them.
Data: each hub holds ROWS_PER_HUB = 500 patients (PI-CAI-sized: 1,500 cases over 3 centres),
drawn with `flute.cohort` from the case mix of pilot site (hub index mod 3); features are age,
log PSA, log prostate volume, DRE, family history, repeat biopsy and PI-RADS, standardised with
the hub's own means and deviations; label csPCa (ISUP >= 2).
Local training per round: ONE epoch of minibatch SGD (batch BATCH_SIZE = 32, so 16 steps, the
last of 20 rows; learning rate 0.05; binary cross-entropy), rows shuffled by a generator seeded
with the hub index, on one thread - deterministic, so every arm computes the same update.
The hub returns its trained weights as float64 (FLUTE's engine carries float64 vectors).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

ROWS_PER_HUB = 500
BATCH_SIZE = 32
LEARNING_RATE = 0.05
N_FEATURES = 7


def hidden_width(params: int) -> int:
    """h whose MLP 7 -> h -> h -> 1 has the parameter count nearest to `params`."""
    root = (-10 + math.sqrt(100 - 4 * (1 - params))) / 2
    return min((math.floor(root), math.ceil(root)), key=lambda h: abs(h * h + 10 * h + 1 - params))


def hub_table(hub: int) -> tuple[np.ndarray, np.ndarray]:
    """Standardised features (float32) and csPCa labels of one hub's patients."""
    from flute.cohort.sim_patients import draw_site_patients
    from flute.cohort.sites import SITES

    patients = draw_site_patients(SITES[hub % len(SITES)], ROWS_PER_HUB, np.random.default_rng([2026, hub]))
    features = np.array(
        [
            [p.age, math.log(p.psa), math.log(p.volume), p.dre, p.family_history, p.repeat_biopsy, p.pirads]
            for p in patients
        ],
        dtype=np.float64,
    )
    spread = features.std(axis=0)
    features = (features - features.mean(axis=0)) / np.where(spread > 0, spread, 1.0)
    return features.astype(np.float32), np.array([p.cspca for p in patients], dtype=np.float32)


@dataclass
class LocalTraining:
    """Every hub's data and the model of one benchmark combination (hubs run one after another)."""

    params: int
    hubs: int
    width: int = field(init=False)
    tables: list[tuple[np.ndarray, np.ndarray]] = field(init=False)

    def __post_init__(self) -> None:
        import torch

        self.width = hidden_width(self.params)
        self.tables = [hub_table(hub) for hub in range(self.hubs)]
        torch.manual_seed(self.params)
        self._model = torch.nn.Sequential(
            torch.nn.Linear(N_FEATURES, self.width),
            torch.nn.ReLU(),
            torch.nn.Linear(self.width, self.width),
            torch.nn.ReLU(),
            torch.nn.Linear(self.width, 1),
        )
        self.initial_weights = torch.nn.utils.parameters_to_vector(self._model.parameters()).detach().numpy().astype(np.float64)

    @property
    def model_params(self) -> int:
        return self.initial_weights.shape[0]

    def train(self, hub: int, weights: np.ndarray) -> np.ndarray:
        """One local epoch from the global `weights`; the hub's trained weights."""
        import torch

        torch.nn.utils.vector_to_parameters(torch.from_numpy(weights.astype(np.float32)), self._model.parameters())
        features, labels = (torch.from_numpy(array) for array in self.tables[hub])
        optimiser = torch.optim.SGD(self._model.parameters(), lr=LEARNING_RATE)
        order = torch.randperm(ROWS_PER_HUB, generator=torch.Generator().manual_seed(hub))
        for start in range(0, ROWS_PER_HUB, BATCH_SIZE):
            batch = order[start : start + BATCH_SIZE]
            optimiser.zero_grad()
            logits = self._model(features[batch]).squeeze(1)
            torch.nn.functional.binary_cross_entropy_with_logits(logits, labels[batch]).backward()
            optimiser.step()
        return torch.nn.utils.parameters_to_vector(self._model.parameters()).detach().numpy().astype(np.float64)
