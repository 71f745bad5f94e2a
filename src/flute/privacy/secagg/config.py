"""Public parameters of one secure-aggregation round, validated up front.

Everything here is known to all hubs and the aggregator before the round starts. The
checks run at construction, so a config that could overflow the modular sum or that
would let too few hubs reveal a secret is refused before any data is touched.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import cached_property

from flute.privacy.secagg.errors import ConfigError
from flute.privacy.secagg.fixed_point import FixedPoint
from flute.privacy.secagg.graph import NeighbourGraph

DEFAULT_ENCODING = FixedPoint(clip_bound=2.0**20, scale_bits=24)
_MAX_HUB_ID = 2**64 - 2  # the Shamir evaluation point hub_id + 1 must fit in 64 bits


@dataclass(frozen=True)
class SecAggConfig:
    """Parameters of one round.

    round_id:      unique per round (e.g. "<study>/<run>/<round>"); bound into every key
                   and signature, so nothing can be replayed across rounds.
    hub_ids:       the invited hubs; the neighbour graph is fixed over them in advance.
    vector_length: number of values each hub contributes.
    threshold:     t, the number of share holders needed to reconstruct a hub's secret;
                   must exceed half of every hub's share holders (see docs).
    encoding:      fixed-point clip bound and scale (overflow policy, see fixed_point).
    neighbours:    k (even) for a SecAgg+ sparse graph; None = every pair masks.
    """

    round_id: str
    hub_ids: tuple[int, ...]
    vector_length: int
    threshold: int
    encoding: FixedPoint = field(default=DEFAULT_ENCODING)
    neighbours: int | None = None

    def __post_init__(self) -> None:
        if not self.round_id:
            raise ConfigError("round_id must be a non-empty string unique to this round")
        hubs = tuple(sorted(self.hub_ids))
        if len(set(hubs)) != len(hubs):
            raise ConfigError(f"hub_ids contain duplicates: {list(self.hub_ids)}")
        if len(hubs) < 2:
            raise ConfigError(f"secure aggregation needs at least 2 hubs, got {len(hubs)}")
        if hubs[0] < 0 or hubs[-1] > _MAX_HUB_ID:
            raise ConfigError(f"hub ids must lie in [0, 2**64 - 2]; got {hubs[0]}..{hubs[-1]}")
        object.__setattr__(self, "hub_ids", hubs)
        if self.vector_length < 1:
            raise ConfigError(f"vector_length must be >= 1, got {self.vector_length}")
        self.encoding.check_capacity(len(hubs))
        smallest = min(len(self.graph.share_holders(hub)) for hub in hubs)
        if not (smallest // 2 < self.threshold <= smallest and self.threshold >= 2):
            raise ConfigError(
                f"threshold {self.threshold} invalid: each hub's secrets are shared among {smallest} hubs, "
                f"so t must satisfy max(2, {smallest // 2 + 1}) <= t <= {smallest} (above half the holders, so no "
                f"two disjoint groups of t hubs exist to reveal a hub's mask seed and its key separately)"
            )

    @cached_property
    def graph(self) -> NeighbourGraph:
        seed = hashlib.sha256(b"flute-secagg/v1/graph\x00" + self.round_id.encode()).digest()
        return NeighbourGraph.build(self.hub_ids, self.neighbours, seed)
