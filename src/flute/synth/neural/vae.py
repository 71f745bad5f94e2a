"""The tabular VAE as the `GeneratorPlugin` named "vae" (F-HUF-11, F-IMSD-13/15/17): TVAE-like
(`vae_model`), trained federatedly (FedAvg/FedProx rounds with a server Adam step, secure
aggregation and, with an epsilon, record-level DP-SGD charged to every metered hub first:
`federated_fit`), numeric outputs marginally calibrated, exact conditions by guided rejection (the
VAE cannot condition: it draws and the sampler keeps the rows that meet them), saved as
safetensors + JSON - all through `latent_generator`.

Hyperparameters (flat, all optional): the `FitSchedule` fields (rounds, local_steps, batch_size,
learning_rate, server_learning_rate, proximal_mu, max_grad_norm, encoder_share, dp_cells) and the
`VaeArchitecture` fields (hidden, depth, latent, numeric_sigma, kl_weight).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from flute.synth.generators import register
from flute.synth.neural.federated_fit import FitSchedule
from flute.synth.neural.latent_generator import PRIVATE_REGIME, LatentModelKind, LatentPlugin

if TYPE_CHECKING:
    from flute.synth.neural.encoding import EncodedLayout
    from flute.synth.neural.vae_model import TabularVae

#: Many short rounds (each hub may hold one centre only; long local runs drift to it). Measured on
#: PI-CAI (3 centres as 3 hubs, non-DP): TSTR (LR) 0.87 against 0.87 train-on-real, SDMetrics
#: quality 0.92, MIA AUC 0.51, DCR ratio 0.96.
DEFAULT_SCHEDULE = FitSchedule(rounds=800, local_steps=2, batch_size=128, learning_rate=0.05, server_learning_rate=1e-2)

#: Under DP (a request that sets none of these): the latent models' private regime.
PRIVATE_DEFAULTS: Mapping[str, Any] = PRIVATE_REGIME | {"latent": 8}


def _architecture() -> type:
    from flute.synth.neural.vae_model import VaeArchitecture

    return VaeArchitecture


def _build(layout: EncodedLayout, architecture: Any) -> TabularVae:
    from flute.synth.neural.vae_model import TabularVae

    return TabularVae(layout, architecture)


KIND = LatentModelKind(
    "vae", "TVAE-like variational autoencoder on federated quantile-normalised columns; FedAvg/FedProx with secure aggregation and DP-SGD",
    DEFAULT_SCHEDULE, _architecture, _build, PRIVATE_DEFAULTS,
)
PLUGIN = register(LatentPlugin(KIND))
