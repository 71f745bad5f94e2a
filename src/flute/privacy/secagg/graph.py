"""Who masks with whom and who holds whose shares: the SecAgg+ neighbour graph.

For a few hubs every pair masks (complete graph, Bonawitz et al. 2017). For many hubs
each hub pairs with only k neighbours (Bell et al. 2020): hubs are placed on a ring in
an order fixed by a public seed and each is joined to the k/2 nearest on either side
(a Harary graph on a random permutation), so cost grows with k ~ O(log n), not n.
The graph is built over the invited hubs, before anyone speaks, so the aggregator
cannot shape it by choosing who it hears from.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from flute.privacy.secagg.errors import ConfigError


@dataclass(frozen=True)
class NeighbourGraph:
    """Undirected graph over hub ids; `neighbours(i)` never contains i."""

    adjacency: dict[int, frozenset[int]]

    @classmethod
    def build(cls, hub_ids: Sequence[int], degree: int | None, seed: bytes) -> NeighbourGraph:
        """Complete graph when `degree` is None or covers everyone, else a k-regular ring."""
        hubs = sorted(hub_ids)
        if degree is None or degree >= len(hubs) - 1:
            everyone = frozenset(hubs)
            return cls({hub: everyone - {hub} for hub in hubs})
        if degree < 2 or degree % 2:
            raise ConfigError(f"neighbour degree k must be an even number >= 2, got {degree}")
        ring = sorted(hubs, key=lambda hub: hashlib.sha256(seed + hub.to_bytes(8, "big")).digest())
        half = degree // 2
        size = len(ring)
        around = ring[-half:] + ring + ring[:half]  # ring[(position + offset) % size] = around[position + half + offset]
        adjacency = {
            hub: frozenset(around[position : position + half] + around[position + half + 1 : position + degree + 1])
            for position, hub in enumerate(ring)
        }
        return cls(adjacency)

    def neighbours(self, hub_id: int) -> frozenset[int]:
        return self.adjacency[hub_id]

    def share_holders(self, hub_id: int) -> frozenset[int]:
        """Hubs that hold a share of `hub_id`'s secrets: its neighbours and itself."""
        return self.adjacency[hub_id] | {hub_id}
