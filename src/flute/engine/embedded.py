"""Embedded mode: a whole study in one process over the in-process Grid, with the same
ServerApp/ClientApp a deployment runs.

Each `HubBinding` names a hub and says where its ClientApp finds its data: a hub home (as in
deployment) or, for benchmarks and tests, an in-memory `StudyDataSource`. Every hub gets its own
Context (node id, node_config, state); the run config, holding the spec, is shared as in Flower.

Studies with PETs: the enrolment list of the hubs' identity public keys is built from the
bindings (a hub home's own key; a fresh key per in-memory hub) and given to the coordinator (run
config) and to every hub (its own node config). An in-memory hub of a DP study needs
`ledger_url`, the database of its privacy ledger.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from flute.cohort.table import StudyDataSource
from flute.engine.apps import CHECKPOINT_KEY, SPEC_KEY, result_from_state
from flute.engine.hub_identity import ENROLMENT_KEY, MEMORY_IDENTITY_KEY, enrolment_json, private_hex, public_hex
from flute.engine.hub_privacy import MEMORY_LEDGER_KEY
from flute.engine.flower import SUPERLINK_NODE_ID, ClientApp, Context, RecordDict, Run, ServerApp, coordinator_identity
from flute.engine.grid import HubFault, InProcessGrid, InProcessHub
from flute.engine.result import StudyResult
from flute.engine.sources import HUB_HOME_KEY, HUB_NAME_KEY, MEMORY_SOURCE_KEY, registered_sources
from flute.engine.spec import StudySpec

EMBEDDED_RUN_ID = 1
FIRST_HUB_NODE_ID = 101


@dataclass(frozen=True)
class HubBinding:
    """A hub of an embedded run: its name and EITHER its hub home OR an in-memory source.
    `fault` injects a simulated failure (tests)."""

    name: str
    home: Path | None = None
    source: StudyDataSource | None = None
    fault: HubFault | None = None
    ledger_url: str | None = None

    def __post_init__(self) -> None:
        if (self.home is None) == (self.source is None):
            raise ValueError(f"hub {self.name!r}: bind exactly one of home= or source=")


def study_run_config(spec: StudySpec, *, checkpoint: Path | None = None) -> dict[str, str]:
    """The run config a study needs (the same keys `flwr run --run-config` would set)."""
    config = {SPEC_KEY: spec.to_json()}
    if checkpoint is not None:
        config[CHECKPOINT_KEY] = str(checkpoint)
    return config


def run_embedded(
    server_app: ServerApp, client_app: ClientApp, hubs: Sequence[HubBinding], run_config: Mapping[str, str]
) -> StudyResult:
    """Run `server_app` against in-process `client_app` hubs; return the StudyResult it produced.

    Exceptions of the coordinator (e.g. TooFewHubs) propagate to the caller.
    """
    return result_from_state(serve_embedded(server_app, client_app, hubs, run_config))


def serve_embedded(
    server_app: ServerApp, client_app: ClientApp, hubs: Sequence[HubBinding], run_config: Mapping[str, str]
) -> RecordDict:
    """Run any `server_app` against in-process `client_app` hubs; return the state its context
    was left with (where a ServerApp leaves its result)."""
    names = [hub.name for hub in hubs]
    if len(set(names)) != len(names):
        raise ValueError(f"hub names must be distinct, got {names}")
    run_config = dict(run_config)
    with_pets = SPEC_KEY in run_config and StudySpec.from_json(run_config[SPEC_KEY], source="run config").pets.mode != "none"
    memory_keys = {hub.name: Ed25519PrivateKey.generate() for hub in hubs if hub.source is not None and with_pets}
    if with_pets:
        run_config[ENROLMENT_KEY] = enrolment_json({hub.name: _public_key(hub, memory_keys) for hub in hubs})
    in_memory = [hub.source for hub in hubs if hub.source is not None]
    with registered_sources(in_memory) as tokens:
        token_of = dict(zip((id(source) for source in in_memory), tokens))
        nodes = []
        for index, hub in enumerate(hubs):
            node_config: dict[str, str | int | float | bool] = {HUB_NAME_KEY: hub.name}
            if hub.home is not None:
                node_config[HUB_HOME_KEY] = str(hub.home)
            else:
                node_config[MEMORY_SOURCE_KEY] = token_of[id(hub.source)]
                if hub.name in memory_keys:
                    node_config[MEMORY_IDENTITY_KEY] = private_hex(memory_keys[hub.name])
                if hub.ledger_url is not None:
                    node_config[MEMORY_LEDGER_KEY] = hub.ledger_url
            if with_pets:
                node_config[ENROLMENT_KEY] = run_config[ENROLMENT_KEY]
            node_id = FIRST_HUB_NODE_ID + index
            context = Context(EMBEDDED_RUN_ID, node_id, node_config, RecordDict(), dict(run_config))
            nodes.append(InProcessHub(node_id, context, hub.fault))
        grid = InProcessGrid(client_app, nodes, Run.create_empty(EMBEDDED_RUN_ID))
        server_context = Context(EMBEDDED_RUN_ID, SUPERLINK_NODE_ID, {}, RecordDict(), dict(run_config))
        with coordinator_identity(EMBEDDED_RUN_ID):
            server_app(grid, server_context)
    return server_context.state


def _public_key(hub: HubBinding, memory_keys: Mapping[str, Ed25519PrivateKey]) -> str:
    if hub.home is not None:
        from flute.hub.identity import identity_public_hex

        return identity_public_hex(hub.home)
    return public_hex(memory_keys[hub.name])
