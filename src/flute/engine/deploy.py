"""The multi-process deployment engine: Flower SuperLink (coordinator) and SuperNodes (hubs).

F-HUF-21: every data-owner node runs its own long-lived server process (a SuperNode bound to
its hub home); the coordinator runs a SuperLink. URS-4 / F-SRS-6: every link is TLS — hub to
coordinator (pinned private CA), the coordinator's loopback Runtime API (same certificate) and
each hub's loopback Runtime API (a throw-away CA per hub process). F-PIL-12 / NF-SRS-5: the
SuperLink runs with `--enable-supernode-auth`: only hubs whose public keys are in the
coordinator's enrolment list are registered, every Fleet request is signed, and the Control
and Runtime APIs are refused to non-loopback peers (`loopback_guard`).

The apps run are ordinary Flower apps given as component references (FLUTE's own are
`flute.engine.apps:server_app` / `:client_app`); the FAB is built in memory, so no app
directory is needed on disk. Runtime dependency installation (`uv sync` per run) is disabled:
the apps come from the installed `flute` package.

Process model (Flower 1.41, subprocess isolation): the SuperLink starts a SuperExec which
spawns one `flwr-serverapp` per run; each SuperNode starts a SuperExec which spawns one
`flwr-clientapp` process per message. See docs/deployment.md for the latency this implies.
"""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, TypeVar

import httpx
import tomli_w

from flute.engine.pki import (
    PkiLayout,
    check_hub_private_key,
    enrolled_hubs,
    issue_loopback_tls,
    public_key_pem,
    secagg_enrolment,
)
from flute.engine.sources import HUB_HOME_KEY, HUB_NAME_KEY

if TYPE_CHECKING:
    from flute.engine.flower import ControlHttpClient
    from flute.engine.result import StudyResult
    from flute.engine.spec import StudySpec

FLUTE_SERVER_APP = "flute.engine.apps:server_app"
FLUTE_CLIENT_APP = "flute.engine.apps:client_app"
DEFAULT_COORDINATOR_PORT = 9093
# How often each SuperExec asks its SuperLink/SuperNode for work (Flower's default: 1 s).
DEFAULT_TASK_POLL_INTERVAL_S = 0.2
# How often an idle hub asks the coordinator for messages (Flower's fixed default: 3 s).
DEFAULT_IDLE_POLL_S = 0.5
_APP_NAME = "flute-study"
_APP_PUBLISHER = "flute"
_CLIENT_NAME = "flute"
_STARTUP_TIMEOUT_S = 60.0
_STOP_TIMEOUT_S = 10.0

RunConfigValue = str | int | float | bool
RequestT = TypeVar("RequestT")
ResponseT = TypeVar("ResponseT")


class DeploymentError(RuntimeError):
    """A deployment process failed to start, died, or a run could not be submitted."""


class RunFailed(DeploymentError):
    """A run finished without completing; `status.details` is the SuperLink's reason."""

    def __init__(self, status: RunStatus) -> None:
        self.status = status
        super().__init__(
            f"run {status.run_id} finished as {status.sub_status or status.status!r}: "
            f"{status.details or 'no details from the SuperLink'}"
        )


@dataclass(frozen=True)
class AppBundle:
    """One Flower app to run: component references, its run config and any extra source files.

    `run_config` becomes the app's `[tool.flwr.app.config]`, which the ServerApp and every
    ClientApp read as `context.run_config`. `sources` are files shipped inside the FAB (e.g. a
    test or benchmark app module); FLUTE's own apps need none, they are installed.
    """

    server_app: str
    client_app: str
    run_config: Mapping[str, RunConfigValue]
    sources: Mapping[str, bytes] = field(default_factory=dict)

    def pyproject(self) -> bytes:
        return tomli_w.dumps(
            {
                "project": {
                    "name": _APP_NAME,
                    "version": "1.0.0",
                    "description": "FLUTE federated study",
                    "license": "Apache-2.0",
                },
                "tool": {
                    "flwr": {
                        "app": {
                            "publisher": _APP_PUBLISHER,
                            "components": {"serverapp": self.server_app, "clientapp": self.client_app},
                            "config": dict(self.run_config),
                        }
                    }
                },
            }
        ).encode("utf-8")

    def fab(self) -> bytes:
        from flute.engine.flower import build_fab_from_files

        fab_bytes, _metadata = build_fab_from_files({"pyproject.toml": self.pyproject(), **self.sources})
        return fab_bytes


def study_bundle(spec: StudySpec, out_dir: Path, checkpoint: Path | None = None, *, pki: Path | None = None) -> AppBundle:
    """FLUTE's study apps with `spec` in the run config; the ServerApp writes OUT_DIR/result.flute.

    `out_dir` (and `checkpoint`) are paths on the coordinator machine, where the ServerApp runs.
    A study with PETs also carries the hubs' secure-aggregation identity keys from the PKI
    directory's `secagg-enrolment.json` (URS-15), as the embedded engine builds them.
    """
    from flute.engine.apps import OUT_DIR_KEY
    from flute.engine.embedded import study_run_config
    from flute.engine.hub_identity import ENROLMENT_KEY, enrolment_json

    run_config = {**study_run_config(spec, checkpoint=checkpoint), OUT_DIR_KEY: str(out_dir.resolve())}
    if spec.pets.mode != "none":
        enrolment = secagg_enrolment(pki) if pki is not None else {}
        if not enrolment:
            raise DeploymentError(
                f"the study uses pets.mode {spec.pets.mode!r}, which needs the hubs' secure-aggregation identity "
                f"keys, but {PkiLayout(pki).secagg_enrolment if pki else 'no PKI directory'} lists none; enrol each "
                "hub with `flute pki issue --hub NAME --secagg-key HEX` (HEX from `flute hub identity` at the hub)"
            )
        run_config[ENROLMENT_KEY] = enrolment_json(enrolment)
    return AppBundle(FLUTE_SERVER_APP, FLUTE_CLIENT_APP, run_config)


def read_study_result(out_dir: Path) -> StudyResult:
    """The StudyResult a completed deployed run wrote to `out_dir`."""
    from flute.engine.apps import RESULT_FILE
    from flute.engine.flower import record_from_bytes
    from flute.engine.result import StudyResult

    path = out_dir / RESULT_FILE
    if not path.is_file():
        raise DeploymentError(f"the run completed but wrote no {RESULT_FILE} to {out_dir}")
    return StudyResult.from_record(record_from_bytes(path.read_bytes()))


@dataclass(frozen=True)
class RunStatus:
    """A run's state as the SuperLink reports it (`status` pending/starting/running/finished)."""

    run_id: int
    status: str
    sub_status: str
    details: str

    @property
    def finished(self) -> bool:
        return self.status == "finished"

    @property
    def completed(self) -> bool:
        return self.finished and self.sub_status == "completed"


@dataclass(frozen=True)
class HubNode:
    """A hub's registration at the SuperLink."""

    name: str
    node_id: int
    status: str


class ServiceProcess:
    """A long-running Flower service in its own session, logging to a file.

    Stopping signals the whole process group, so the SuperExec and app processes a SuperNode
    spawned go with it.
    """

    def __init__(self, name: str, argv: list[str], env: Mapping[str, str], log_path: Path) -> None:
        self.name = name
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as log_file:
            self._process = subprocess.Popen(
                argv,
                env=dict(env),
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        return self._process.pid

    @property
    def returncode(self) -> int | None:
        return self._process.poll()

    @property
    def alive(self) -> bool:
        return self.returncode is None

    def wait(self, timeout_s: float) -> int | None:
        try:
            return self._process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            return None

    def log_tail(self, lines: int = 30) -> str:
        if not self.log_path.is_file():
            return ""
        return "\n".join(self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])

    def terminate(self) -> None:
        """Ask the service to shut down (SIGTERM to its process group); `stop` waits for it."""
        if self.alive:
            _signal_group(self.pid, signal.SIGTERM)

    def stop(self, timeout_s: float = _STOP_TIMEOUT_S) -> None:
        """SIGTERM the process group, then SIGKILL whatever is left after `timeout_s`."""
        if self.alive:
            self.terminate()
            if self.wait(timeout_s) is None:
                _signal_group(self.pid, signal.SIGKILL)
                self.wait(timeout_s)
        # Children that outlived their parent (e.g. an app process) still carry the group id.
        _signal_group(self.pid, signal.SIGKILL)


def stop_all(services: Iterable[ServiceProcess]) -> None:
    """Stop several services in parallel: each SuperNode needs ~2 s to sign off at the SuperLink."""
    stopping = list(services)
    for service in stopping:
        service.terminate()
    for service in stopping:
        service.stop()


def flower_environment(state_dir: Path, task_poll_interval_s: float = DEFAULT_TASK_POLL_INTERVAL_S) -> dict[str, str]:
    """Environment for a Flower service: no telemetry, private FLWR_HOME, this venv's commands first.

    Flower starts `flower-superexec`, `flwr-serverapp` and `flwr-clientapp` by name, so the
    directory of the running interpreter leads PATH.
    """
    env = dict(os.environ)
    env.update(
        {
            "FLWR_TELEMETRY_ENABLED": "0",
            "FLWR_DISABLE_UPDATE_CHECK": "1",
            "FLWR_HOME": str(state_dir / "flwr-home"),
            "FLWR_SUPEREXEC_TASK_POLL_INTERVAL": str(task_poll_interval_s),
            "PATH": os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]),
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on `host` right now (the caller binds it next)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def loopback_address(host: str, port: int) -> str:
    """Where processes on the coordinator machine reach a SuperLink bound to `host`."""
    if host in ("0.0.0.0", "127.0.0.1", "localhost"):
        return f"127.0.0.1:{port}"
    if host in ("::", "::1"):
        return f"[::1]:{port}"
    raise DeploymentError(
        f"coordinator host {host!r} is neither loopback nor a wildcard address: bind 127.0.0.1 "
        "for a single machine or 0.0.0.0 / :: to accept hubs on every interface (the Control "
        "and Runtime APIs stay loopback-only either way)"
    )


class ControlClient:
    """The coordinator's client for the SuperLink's Control API (loopback only, TLS-verified)."""

    def __init__(self, address: str, ca_cert: Path) -> None:
        from flute.engine.flower import ControlHttpClient, RuntimeVersionHttpInterceptor

        self.address = address
        self._client: ControlHttpClient = ControlHttpClient.from_server_address(
            server_address=address,
            insecure=False,
            root_certificates=ca_cert.read_bytes(),
            interceptors=[RuntimeVersionHttpInterceptor(component_name=_CLIENT_NAME)],
        )

    def close(self) -> None:
        self._client.close()

    def _call(self, method: Callable[[RequestT], ResponseT], request: RequestT) -> ResponseT:
        try:
            return method(request)
        except httpx.TransportError as exc:
            raise DeploymentError(
                f"cannot reach the coordinator's Control API at {self.address} ({exc}); "
                "is `flute coordinator serve` running on this machine?"
            ) from exc
        except httpx.HTTPStatusError as exc:
            raise DeploymentError(
                f"the coordinator's Control API refused {type(request).__name__}: "
                f"HTTP {exc.response.status_code} {exc.response.text[:500]}"
            ) from exc

    def register_hub(self, name: str, public_key_openssh: str) -> int:
        """Register one enrolled hub's public key; the SuperLink refuses every other node."""
        from flute.engine.flower import RegisterNodeRequest

        response = self._call(
            self._client.RegisterNode, RegisterNodeRequest(public_key=public_key_pem(public_key_openssh), name=name)
        )
        if not response.node_id:
            raise DeploymentError(f"the SuperLink did not register hub {name!r}")
        return int(response.node_id)

    def hubs(self) -> list[HubNode]:
        from flute.engine.flower import ListNodesRequest

        response = self._call(self._client.ListNodes, ListNodesRequest())
        return [HubNode(name=n.name, node_id=int(n.node_id), status=n.status) for n in response.nodes_info]

    def wait_for_hubs(
        self, names: Collection[str] = (), minimum: int = 0, timeout_s: float = _STARTUP_TIMEOUT_S
    ) -> list[HubNode]:
        """Block until every hub in `names`, and at least `minimum` hubs, are connected."""
        wanted = set(names)
        deadline = time.monotonic() + timeout_s
        while True:
            online = {hub.name: hub for hub in self.hubs() if hub.status == "online"}
            if wanted <= online.keys() and len(online) >= minimum:
                return [online[name] for name in sorted(online)]
            if time.monotonic() > deadline:
                raise DeploymentError(
                    f"hubs did not connect within {timeout_s:.0f} s: waiting for {sorted(wanted - online.keys())} "
                    f"and at least {minimum} in all; connected: {sorted(online)}"
                )
            time.sleep(0.2)

    def start_run(self, bundle: AppBundle) -> int:
        from flute.engine.flower import Fab, StartRunRequest, fab_to_proto, user_config_to_proto

        fab_bytes = bundle.fab()
        fab = Fab(hashlib.sha256(fab_bytes).hexdigest(), fab_bytes, {})
        response = self._call(
            self._client.StartRun,
            StartRunRequest(fab=fab_to_proto(fab), override_config=user_config_to_proto({}), federation=""),
        )
        if not response.HasField("run_id"):
            raise DeploymentError("the SuperLink refused to start the run")
        return int(response.run_id)

    def run_status(self, run_id: int) -> RunStatus:
        from flute.engine.flower import ListRunsRequest

        runs = self._call(self._client.ListRuns, ListRunsRequest(run_id=run_id)).run_dict
        if run_id not in runs:
            raise DeploymentError(f"the SuperLink does not know run {run_id}")
        status = runs[run_id].status
        return RunStatus(run_id=run_id, status=status.status, sub_status=status.sub_status, details=status.details)

    def wait_for_run(self, run_id: int, timeout_s: float, poll_s: float = 0.2) -> RunStatus:
        """Block until the run finishes; raise RunFailed unless it completed.

        `flwr run` reports success as soon as a run is submitted; this checks the outcome.
        """
        deadline = time.monotonic() + timeout_s
        while not (status := self.run_status(run_id)).finished:
            if time.monotonic() > deadline:
                raise DeploymentError(f"run {run_id} still {status.status!r} after {timeout_s:.0f} s")
            time.sleep(poll_s)
        if not status.completed:
            raise RunFailed(status)
        return status

    def run(self, bundle: AppBundle, timeout_s: float = 600.0) -> RunStatus:
        """Submit `bundle` and wait for it to complete."""
        return self.wait_for_run(self.start_run(bundle), timeout_s)


class Coordinator:
    """A running SuperLink with the enrolled hubs registered. Use as a context manager."""

    def __init__(
        self,
        pki_dir: Path,
        state_dir: Path,
        host: str = "127.0.0.1",
        port: int = DEFAULT_COORDINATOR_PORT,
        task_poll_interval_s: float = DEFAULT_TASK_POLL_INTERVAL_S,
    ) -> None:
        layout = PkiLayout(pki_dir)
        layout.require_server_identity()
        self.enrolment = enrolled_hubs(pki_dir)
        self.host, self.port = host, port
        self.control_address = loopback_address(host, port)
        argv = [
            sys.executable, "-m", "flute.engine.superlink_main",
            "--host", host,
            "--port", str(port),
            "--ssl-ca-certfile", str(layout.ca_cert),
            "--ssl-certfile", str(layout.server_cert),
            "--ssl-keyfile", str(layout.server_key),
            "--enable-supernode-auth",
            "--disable-runtime-dependency-installation",
            "--isolation", "subprocess",
        ]  # fmt: skip
        state_dir.mkdir(parents=True, exist_ok=True)
        self.control = ControlClient(self.control_address, layout.ca_cert)
        self.process = ServiceProcess(
            "superlink", argv, flower_environment(state_dir, task_poll_interval_s), state_dir / "superlink.log"
        )
        try:
            _wait_until_healthy(self.process, self.control_address, layout.ca_cert)
            # The SuperLink keeps its state in memory: every start registers exactly the current
            # enrolment list, so a hub removed from it can no longer connect.
            self.node_ids = {name: self.control.register_hub(name, key) for name, key in self.enrolment.items()}
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        self.control.close()
        self.process.stop()

    def __enter__(self) -> Coordinator:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


class HubServer:
    """A SuperNode bound to one hub home (node_config `hub-home`, `hub-name`). Context manager.

    `secagg_identities` (hub name -> Ed25519 public key hex, the hub's own copy of the
    coordinator's list) goes into the node config: the hub verifies its peers' signed round keys
    against it in secure-aggregation studies (URS-15).
    """

    def __init__(
        self,
        name: str,
        home: Path,
        coordinator: str,
        ca_cert: Path,
        key: Path,
        state_dir: Path,
        runtime_port: int | None = None,
        task_poll_interval_s: float = DEFAULT_TASK_POLL_INTERVAL_S,
        idle_poll_s: float = DEFAULT_IDLE_POLL_S,
        secagg_identities: Mapping[str, str] | None = None,
    ) -> None:
        from flute.engine.hub_identity import ENROLMENT_KEY, enrolment_json

        check_hub_private_key(key)
        if not ca_cert.is_file():
            raise DeploymentError(f"coordinator CA certificate {ca_cert} does not exist (copy ca.pem from the coordinator)")
        self.name = name
        state_dir.mkdir(parents=True, exist_ok=True)
        node_config = state_dir / "node-config.toml"
        config = {HUB_HOME_KEY: str(home.resolve()), HUB_NAME_KEY: name}
        if secagg_identities:
            config[ENROLMENT_KEY] = enrolment_json(secagg_identities)
        node_config.write_text(tomli_w.dumps(config), encoding="utf-8")
        runtime_tls = PkiLayout(state_dir / "runtime-tls")
        if not runtime_tls.ca_cert.exists():
            issue_loopback_tls(runtime_tls.root)
        argv = [
            sys.executable, "-m", "flute.engine.supernode_main",
            "--idle-poll", str(idle_poll_s),
            "--superlink", coordinator,
            "--root-certificates", str(ca_cert),
            "--auth-supernode-private-key", str(key),
            "--node-config", str(node_config),
            "--isolation", "subprocess",
            "--host", "127.0.0.1",
            "--port", str(runtime_port or free_port()),
            "--ssl-ca-certfile", str(runtime_tls.ca_cert),
            "--ssl-certfile", str(runtime_tls.server_cert),
            "--ssl-keyfile", str(runtime_tls.server_key),
        ]  # fmt: skip
        self.process = ServiceProcess(
            f"hub-{name}", argv, flower_environment(state_dir, task_poll_interval_s), state_dir / "supernode.log"
        )

    def stop(self) -> None:
        self.process.stop()

    def __enter__(self) -> HubServer:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


def _wait_until_healthy(process: ServiceProcess, address: str, ca_cert: Path) -> None:
    deadline = time.monotonic() + _STARTUP_TIMEOUT_S
    with httpx.Client(verify=_ssl_context(ca_cert), timeout=2.0) as client:
        while time.monotonic() < deadline:
            if not process.alive:
                raise DeploymentError(
                    f"{process.name} exited with code {process.returncode} while starting:\n{process.log_tail()}"
                )
            try:
                if client.get(f"https://{address}/health").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
    raise DeploymentError(f"{process.name} did not become healthy at {address} within {_STARTUP_TIMEOUT_S:.0f} s")


def _ssl_context(ca_cert: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(ca_cert))


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def serve_until_signalled(process: ServiceProcess) -> int | None:
    """Block until SIGINT/SIGTERM arrives (returns None) or `process` exits (returns its code).

    For the `serve` commands: the service runs in its own session, so a terminal's Ctrl-C
    reaches only this supervisor, which then stops the service cleanly.
    """
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        while not stop.wait(0.5):
            if not process.alive:
                return process.returncode
        return None
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
