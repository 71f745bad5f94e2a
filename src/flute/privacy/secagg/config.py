"""Public parameters of one secure-aggregation round, validated up front.

Everything here is known to all hubs and the aggregator before the round starts. The
checks run at construction, so a config that could overflow the modular sum or that
would let too few hubs reveal a secret is refused before any data is touched.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass, field
from functools import cached_property

from flute.privacy.secagg.errors import ConfigError
from flute.privacy.secagg.fixed_point import FixedPoint
from flute.privacy.secagg.graph import NeighbourGraph
from flute.privacy.secagg.wire import Reader, Writer

DEFAULT_ENCODING = FixedPoint(clip_bound=2.0**20, scale_bits=24)
_MAX_HUB_ID = 2**64 - 2  # the Shamir evaluation point hub_id + 1 must fit in 64 bits
_TAG = b"secagg.config"
_FLOAT = struct.Struct(">d")


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
        smallest = 1 + min(len(neighbours) for neighbours in self.graph.adjacency.values())  # holders = neighbours + itself
        if not (smallest // 2 < self.threshold <= smallest and self.threshold >= 2):
            raise ConfigError(
                f"threshold {self.threshold} invalid: each hub's secrets are shared among {smallest} hubs, "
                f"so t must satisfy max(2, {smallest // 2 + 1}) <= t <= {smallest} (above half the holders, so no "
                f"two disjoint groups of t hubs exist to reveal a hub's mask seed and its key separately)"
            )

    def to_bytes(self) -> bytes:
        """Canonical form, so the aggregator can announce the round and hubs can store it."""
        writer = Writer(_TAG).text(self.round_id).u64_list(self.hub_ids).u64(self.vector_length)
        writer.u64(self.threshold).u64(self.neighbours or 0)
        return writer.blob(_FLOAT.pack(self.encoding.clip_bound)).u64(self.encoding.scale_bits).to_bytes()

    @classmethod
    def from_bytes(cls, data: bytes) -> SecAggConfig:
        """Decode and re-validate (every check of the constructor runs again)."""
        reader = Reader(data, _TAG)
        round_id, hub_ids, length, threshold, neighbours = (
            reader.text(), reader.u64_list(), reader.u64(), reader.u64(), reader.u64()
        )
        raw_bound = reader.blob()
        if len(raw_bound) != _FLOAT.size:
            raise ConfigError(f"clip bound must be an 8-byte float, got {len(raw_bound)} bytes")
        (clip_bound,) = _FLOAT.unpack(raw_bound)
        encoding = FixedPoint(clip_bound=clip_bound, scale_bits=reader.u64())
        reader.finish()
        return cls(round_id, hub_ids, length, threshold, encoding, neighbours or None)

    @property
    def confirmation_quorum(self) -> int:
        """Survivor signatures a hub needs before unmasking: t, and more than half the invited hubs.

        Honest hubs sign one survivor set each, so a majority quorum means no two different
        sets can both be confirmed (the consistency check). With the complete graph t > n/2
        already ensures it; with a sparse graph t counts holders only, so the majority binds.
        """
        return max(self.threshold, len(self.hub_ids) // 2 + 1)

    @cached_property
    def graph(self) -> NeighbourGraph:
        seed = hashlib.sha256(b"flute-secagg/v1/graph\x00" + self.round_id.encode()).digest()
        return NeighbourGraph.build(self.hub_ids, self.neighbours, seed)
