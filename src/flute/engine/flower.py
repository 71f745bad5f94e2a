"""The one module that imports Flower (flwr==1.41.0).

Flower phones home and checks for updates unless told not to; both are switched off here, before
the import, so that no FLUTE process contacts anything a data owner did not agree to. Everything
else in FLUTE takes Flower's names from this module, so a Flower upgrade touches one file.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

os.environ["FLWR_TELEMETRY_ENABLED"] = "0"
os.environ["FLWR_DISABLE_UPDATE_CHECK"] = "1"

from flwr.app import (  # noqa: E402
    Array,
    ArrayRecord,
    ConfigRecord,
    Context,
    Error,
    Message,
    MessageType,
    Metadata,
    MetricRecord,
    RecordDict,
)
from flwr.clientapp import ClientApp  # noqa: E402
from flwr.common.constant import SUPERLINK_NODE_ID, ErrorCode  # noqa: E402
from flwr.common.serde import recorddict_from_proto, recorddict_to_proto  # noqa: E402
from flwr.proto.recorddict_pb2 import RecordDict as _ProtoRecordDict  # noqa: E402
from flwr.serverapp import Grid, ServerApp  # noqa: E402
from flwr.supercore.run import Run  # noqa: E402
from flwr.supercore.task_identity import TaskIdentity  # noqa: E402

__all__ = [
    "Array",
    "ArrayRecord",
    "ClientApp",
    "ConfigRecord",
    "Context",
    "Error",
    "ErrorCode",
    "Grid",
    "Message",
    "MessageType",
    "Metadata",
    "MetricRecord",
    "RecordDict",
    "Run",
    "SUPERLINK_NODE_ID",
    "ServerApp",
    "coordinator_identity",
    "record_from_bytes",
    "record_to_bytes",
]


def record_to_bytes(record: RecordDict) -> bytes:
    """Flower's own wire encoding of a RecordDict (what travels between SuperLink and SuperNode)."""
    return bytes(recorddict_to_proto(record).SerializeToString(deterministic=True))


def record_from_bytes(data: bytes) -> RecordDict:
    proto = _ProtoRecordDict()
    proto.ParseFromString(data)
    return recorddict_from_proto(proto)


# --- Deployment engine (flute.engine.deploy): the SuperLink's Control API client and FAB building.
# Loaded on first access (PEP 562): every ClientApp process of a deployment imports this module,
# and these imports would add about a second to each of them.
_DEPLOYMENT_NAMES: dict[str, str] = {
    "build_fab_from_files": "flwr.cli.build",
    "fab_to_proto": "flwr.common.serde",
    "user_config_to_proto": "flwr.common.serde",
    "ListNodesRequest": "flwr.proto.control_pb2",
    "ListRunsRequest": "flwr.proto.control_pb2",
    "RegisterNodeRequest": "flwr.proto.control_pb2",
    "StartRunRequest": "flwr.proto.control_pb2",
    "ControlHttpClient": "flwr.supercore.control",
    "Fab": "flwr.supercore.fab",
    "RuntimeVersionHttpInterceptor": "flwr.supercore.interceptors",
}

__all__ += [*_DEPLOYMENT_NAMES, "serve_superlink", "serve_supernode"]


def __getattr__(name: str) -> Any:
    module = _DEPLOYMENT_NAMES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


if TYPE_CHECKING:
    from flwr.cli.build import build_fab_from_files  # noqa: F401
    from flwr.common.serde import fab_to_proto, user_config_to_proto  # noqa: F401
    from flwr.proto.control_pb2 import ListNodesRequest, ListRunsRequest, RegisterNodeRequest, StartRunRequest  # noqa: F401
    from flwr.supercore.control import ControlHttpClient  # noqa: F401
    from flwr.supercore.fab import Fab  # noqa: F401
    from flwr.supercore.interceptors import RuntimeVersionHttpInterceptor  # noqa: F401


def serve_superlink(argv: list[str], wrap_app: Callable[[Any], Any]) -> None:
    """Run `flower-superlink ARGV`, serving `wrap_app(app)` instead of Flower's bare HTTP app.

    Mirrors `flwr.superlink.cli.flower_superlink.flower_superlink` (1.41.0) step for step, with
    one difference: the FastAPI app is wrapped before uvicorn serves it (FLUTE wraps it in
    `loopback_guard.RemoteFleetOnly`). Flower's own argument parsing and lifespan are reused.
    """
    import importlib
    import sys

    import uvicorn
    from flwr.supercore.http_logging import get_uvicorn_log_config
    from flwr.supercore.logger import console_handler
    from flwr.superlink.main import create_app

    # `flwr.superlink.cli` re-exports the command function under the module's name.
    superlink_cli = importlib.import_module("flwr.superlink.cli.flower_superlink")

    sys.argv = ["flower-superlink", *argv]
    config = superlink_cli._parse_superlink_lifespan_config()
    app = create_app(config, superlink_cli.SuperLinkLifespan)
    uvicorn.run(
        app=wrap_app(app),
        host=config.host,
        port=config.port,
        reload=False,
        access_log=True,
        log_config=get_uvicorn_log_config(console_handler.level),
        ssl_keyfile=config.ssl_keyfile,
        ssl_certfile=config.ssl_certfile,
        workers=1,
    )


class _CappedSleep:
    """Stands in for the `time` module inside Flower's SuperNode loop: every sleep is capped."""

    def __init__(self, cap_s: float) -> None:
        self._cap_s = cap_s

    def sleep(self, seconds: float) -> None:
        time.sleep(min(seconds, self._cap_s))

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


def serve_supernode(argv: list[str], idle_poll_s: float) -> None:
    """Run `flower-supernode ARGV` polling the SuperLink every `idle_poll_s` when idle.

    Flower 1.41 hard-codes `time.sleep(3)` between empty PullMessages calls (and 0.5 s waits for a
    ClientApp's reply) in `flwr.supernode.start_client_internal`, which puts up to 3 s on every
    round. There is no flag for it, so that module's `time` is replaced by one whose sleeps are
    capped at `idle_poll_s`; nothing else in Flower changes.
    """
    import importlib
    import sys

    if not 0.05 <= idle_poll_s <= 3.0:
        raise ValueError(f"idle poll interval must be between 0.05 and 3 s, got {idle_poll_s}")
    node_loop = importlib.import_module("flwr.supernode.start_client_internal")
    node_loop.time = _CappedSleep(idle_poll_s)  # type: ignore[attr-defined]
    supernode_cli = importlib.import_module("flwr.supernode.cli.flower_supernode")
    sys.argv = ["flower-supernode", *argv]
    supernode_cli.flower_supernode()


@contextmanager
def coordinator_identity(run_id: int) -> Iterator[None]:
    """Act as the coordinator task of `run_id` in this process, as Flower's ServerApp runtime does
    before calling a ServerApp (messages take their run id and source node from it); the previous
    identity is restored afterwards."""
    previous = (TaskIdentity._task_id, TaskIdentity._run_id, TaskIdentity._node_id)
    TaskIdentity.task_id, TaskIdentity.run_id, TaskIdentity.node_id = 1, run_id, SUPERLINK_NODE_ID
    try:
        yield
    finally:
        TaskIdentity._task_id, TaskIdentity._run_id, TaskIdentity._node_id = previous
