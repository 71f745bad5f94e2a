"""One-call, in-memory run of the whole protocol, for tests, benchmarks and simulations.

The engine carries the same messages between processes; here they are handed over
directly, and `drop_at` simulates hubs that stop responding from a given stage on
(they send nothing at that stage nor later), which is how dropout is exercised.
"""

from __future__ import annotations

from collections.abc import Mapping, Set

import numpy as np
import numpy.typing as npt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from flute.privacy.secagg.client import ClientSession
from flute.privacy.secagg.config import SecAggConfig
from flute.privacy.secagg.errors import ConfigError, InputError
from flute.privacy.secagg.server import SecureSumResult, ServerSession

HUB_STAGES = ("advertise_keys", "share_keys", "masked_input", "confirm_survivors", "unmask")


def enrol_hubs(hub_ids: tuple[int, ...]) -> tuple[dict[int, Ed25519PrivateKey], dict[int, Ed25519PublicKey]]:
    """Fresh long-term identities for `hub_ids` and the verifier's mapping of their public keys."""
    identities = {hub: Ed25519PrivateKey.generate() for hub in hub_ids}
    return identities, {hub: key.public_key() for hub, key in identities.items()}


def run_secure_sum(
    inputs: Mapping[int, npt.NDArray[np.generic]],
    config: SecAggConfig,
    drop_at: Mapping[str, Set[int]] | None = None,
) -> npt.NDArray[np.float64]:
    """The secure sum of the inputs of the hubs that stay to the end, shaped like one input."""
    shapes = {np.shape(values) for values in inputs.values()}
    if len(shapes) != 1:
        raise InputError(f"all hubs must contribute arrays of one shape; got {sorted(shapes)}")
    (shape,) = shapes
    flat = {hub: np.asarray(values).reshape(-1) for hub, values in inputs.items()}
    identities, enrolled = enrol_hubs(config.hub_ids)
    return run_sessions(flat, config, identities, enrolled, drop_at).total.reshape(shape)


def run_sessions(
    inputs: Mapping[int, npt.NDArray[np.generic]],
    config: SecAggConfig,
    identities: Mapping[int, Ed25519PrivateKey],
    enrolled: Mapping[int, Ed25519PublicKey],
    drop_at: Mapping[str, Set[int]] | None = None,
) -> SecureSumResult:
    """Drive one ServerSession and a ClientSession per hub through every stage."""
    if set(inputs) != set(config.hub_ids):
        raise ConfigError(f"inputs are for hubs {sorted(inputs)}, the config invites {list(config.hub_ids)}")
    unknown = set(drop_at or {}) - set(HUB_STAGES)
    if unknown:
        raise ConfigError(f"drop_at names unknown stages {sorted(unknown)}; stages are {list(HUB_STAGES)}")
    gone: set[int] = set()

    def active(stage: str, hubs: Set[int]) -> list[int]:
        gone.update((drop_at or {}).get(stage, set()))
        return sorted(set(hubs) - gone)

    server = ServerSession(config, enrolled)
    hubs = {hub: ClientSession(config, hub, identities[hub], enrolled) for hub in config.hub_ids}
    directory = server.collect_keys(hubs[hub].advertise_keys() for hub in active("advertise_keys", hubs.keys()))
    recipients = {advertisement.hub_id for advertisement in directory.advertisements}
    deliveries = server.route_shares(hubs[hub].share_keys(directory) for hub in active("share_keys", recipients))
    survivors = server.collect_masked(
        hubs[hub].masked_input(deliveries[hub], inputs[hub]) for hub in active("masked_input", deliveries.keys())
    )
    request = server.collect_confirmations(
        hubs[hub].confirm_survivors(survivors) for hub in active("confirm_survivors", set(survivors.survivors))
    )
    signers = {confirmation.hub_id for confirmation in request.confirmations}
    return server.collect_unmask(hubs[hub].unmask(request) for hub in active("unmask", signers))
