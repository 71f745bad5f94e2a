"""Asynchronous training jobs with progress and cancellation, several at once (F-IMSD-16,
NF-IMSD-5), their state persisted in the workspace store so any process can list them.

Processes, not threads: training is CPU-bound (numpy, torch) and long. One OS process per job
gives each job its own interpreter lock and torch thread pool (threads would serialise the Python
parts of every job on one lock), isolates crashes (a job killed by the out-of-memory killer or
a native crash takes down only itself), and outlives the command that started it, so
`flute synth train --background` returns at once and `flute synth list` follows the job from any
shell. The job's process is `python -m flute.synth.workspace.worker HOME JOB`; a foreground
training runs the very same `Jobs.run` in the caller's process.

Progress (`TrainSettings.progress`) and a heartbeat are written to the job's row; cancellation
sets the row's `cancel_requested`, which the job polls through `TrainSettings.cancelled` and
turns into `TrainingCancelled` (the ledgers' reservations are refunded: `charged` releases them
on any exception). A job whose process died (same host: the pid is gone; any host: no
heartbeat for `STALE_AFTER_S`) is marked failed the next time jobs are read. A job registers its
generator only as its last step, atomically (`SynthWorkspace.save_generator`): a crash leaves no
half-registered artefact.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from enum import Enum
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from flute.synth.generators import TrainingCancelled, TrainSettings, generator
from flute.synth.workspace.home import WorkspaceError
from flute.synth.workspace.models import GeneratorRecord, JobRecord
from flute.synth.workspace.store import SynthWorkspace, as_utc, now

HEARTBEAT_S = 2.0
STALE_AFTER_S = 60.0
CANCEL_POLL_S = 0.2
LOG_DIR = "logs"


class JobState(str, Enum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)


@dataclass(frozen=True)
class TrainRequest:
    """What a training job does: train `generator` over the hub homes and save it as `name`."""

    hubs: tuple[str, ...]
    variables: tuple[str, ...]
    study: str
    generator: str
    name: str
    epsilon: float | None = None
    delta: float = 1e-6
    hyperparameters: Mapping[str, Any] = field(default_factory=dict)
    seed: int | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self) | {"hyperparameters": dict(self.hyperparameters)})

    @classmethod
    def from_json(cls, text: str) -> TrainRequest:
        data = json.loads(text)
        return cls(**data | {"hubs": tuple(data["hubs"]), "variables": tuple(data["variables"])})


@dataclass(frozen=True)
class JobInfo:
    id: str
    user: str
    generator: str
    request: TrainRequest
    state: JobState
    progress: float
    message: str
    cancel_requested: bool
    created_at: datetime
    finished_at: datetime | None
    error: str | None
    saved_generator: str | None  # NAME:VERSION once it succeeded

    @classmethod
    def of(cls, row: JobRecord, saved: str | None) -> JobInfo:
        return cls(
            row.id, row.user, row.generator, TrainRequest.from_json(row.request_json), JobState(row.state), row.progress, row.message,
            row.cancel_requested, as_utc(row.created_at), None if row.finished_at is None else as_utc(row.finished_at), row.error, saved,
        )

    def to_json(self) -> dict[str, Any]:
        """What a client may see (the hub homes of the request stay on the server)."""
        request = self.request
        return {
            "id": self.id, "user": self.user, "generator": self.generator, "state": self.state.value, "progress": self.progress,
            "message": self.message, "cancel_requested": self.cancel_requested, "created_at": self.created_at.isoformat(),
            "finished_at": None if self.finished_at is None else self.finished_at.isoformat(), "error": self.error,
            "saved_generator": self.saved_generator, "study": request.study, "name": request.name, "variables": list(request.variables),
            "epsilon": request.epsilon, "delta": request.delta, "hyperparameters": dict(request.hyperparameters),
        }


class Jobs:
    """Training jobs of one workspace."""

    def __init__(self, workspace: SynthWorkspace) -> None:
        self.workspace = workspace

    def submit(self, user: str, request: TrainRequest) -> JobInfo:
        """Record a queued job (the generator must exist; its hyperparameters are checked when it runs)."""
        generator(request.generator)
        job_id = uuid.uuid4().hex
        with Session(self.workspace.engine) as session, session.begin():
            session.add(JobRecord(id=job_id, user=user, generator=request.generator, request_json=request.to_json(), state=JobState.QUEUED.value,
                                  cancel_requested=False, progress=0.0, message="queued", created_at=now()))
        return self.job(job_id)

    def start(self, job_id: str) -> subprocess.Popen[bytes]:
        """Run the job in its own process (detached: it outlives the caller); its output goes to
        `logs/JOB.log` in the workspace."""
        log_dir = self.workspace.home / LOG_DIR
        log_dir.mkdir(exist_ok=True)
        with (log_dir / f"{job_id}.log").open("ab") as log:
            return subprocess.Popen(
                [sys.executable, "-m", "flute.synth.workspace.worker", str(self.workspace.home.resolve()), job_id],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )

    def run(self, job_id: str, on_progress: Callable[[float, str], None] | None = None) -> JobInfo:
        """Run a queued job in THIS process to its end (succeeded, failed or cancelled)."""
        from flute.synth.federated import open_hub_homes
        from flute.synth.schema import study_schema

        request = self._claim(job_id)
        stop = threading.Event()
        beat = threading.Thread(target=self._heartbeat, args=(job_id, stop), daemon=True)
        beat.start()
        started = time.process_time()
        try:
            plugin = generator(request.generator)
            settings = TrainSettings(
                request.study, request.epsilon, request.delta, dict(request.hyperparameters), request.seed,
                progress=self._progress_writer(job_id, on_progress), cancelled=self._cancel_poller(job_id),
            )
            settings.check_cancelled()
            with open_hub_homes([Path(h) for h in request.hubs], request.variables, request.study) as hubs:
                schema = study_schema(request.variables, [hub.name for hub in hubs])
                fitted = plugin.train(hubs, schema, settings)
            user = self._user(job_id)
            saved = self.workspace.save_generator(request.name, plugin.name, fitted, request.study, request.hyperparameters, user)
            self.workspace.record_usage(user, "train", f"job {job_id} -> generator {saved.name}:{saved.version}", cpu_seconds=time.process_time() - started)
            self._finish(job_id, JobState.SUCCEEDED, "saved as " + f"{saved.name}:{saved.version}", generator_id=saved.id)
        except TrainingCancelled as exc:
            self._finish(job_id, JobState.CANCELLED, "cancelled", error=str(exc))
        except Exception as exc:  # noqa: BLE001 - any failure of the job is recorded on it, with its message
            self._finish(job_id, JobState.FAILED, "failed", error=f"{type(exc).__name__}: {exc}")
        except BaseException:
            self._finish(job_id, JobState.FAILED, "failed", error="interrupted")
            raise
        finally:
            stop.set()
            beat.join()
        return self.job(job_id)

    def cancel(self, job_id: str) -> JobInfo:
        """Ask the job to stop: a queued job is cancelled at once, a running one at its next check."""
        with Session(self.workspace.engine) as session, session.begin():
            row = self._row(session, job_id)
            if not JobState(row.state).finished:
                row.cancel_requested = True
                if row.state == JobState.QUEUED.value:
                    row.state, row.message, row.finished_at = JobState.CANCELLED.value, "cancelled before it started", now()
        return self.job(job_id)

    def job(self, job_id: str) -> JobInfo:
        self._reap()
        with Session(self.workspace.engine) as session:
            row = self._row(session, job_id)
            return JobInfo.of(row, self._saved_name(session, row))

    def jobs(self) -> list[JobInfo]:
        self._reap()
        with Session(self.workspace.engine) as session:
            rows = session.scalars(select(JobRecord).order_by(JobRecord.created_at)).all()
            return [JobInfo.of(row, self._saved_name(session, row)) for row in rows]

    def wait(self, job_id: str, *, timeout_s: float = 24 * 3600.0, poll_s: float = 0.5) -> JobInfo:
        deadline = time.monotonic() + timeout_s
        while not (info := self.job(job_id)).state.finished:
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {info.state.value} ({info.progress:.0%}: {info.message}) after {timeout_s:g} s")
            time.sleep(poll_s)
        return info

    # -- internals ------------------------------------------------------------------------------

    def _claim(self, job_id: str) -> TrainRequest:
        with Session(self.workspace.engine) as session, session.begin():
            claimed = session.execute(
                update(JobRecord).where(JobRecord.id == job_id, JobRecord.state == JobState.QUEUED.value)
                .values(state=JobState.RUNNING.value, host=socket.gethostname(), pid=os.getpid(), heartbeat_at=now(), message="started")
            ).rowcount
            row = self._row(session, job_id)
            if not claimed:
                raise WorkspaceError(f"job {job_id} is {row.state}, not queued: it cannot be run again")
            return TrainRequest.from_json(row.request_json)

    def _finish(self, job_id: str, state: JobState, message: str, *, error: str | None = None, generator_id: int | None = None) -> None:
        with Session(self.workspace.engine) as session, session.begin():
            row = self._row(session, job_id)
            row.state, row.message, row.error, row.generator_id, row.finished_at = state.value, message, error, generator_id, now()
            if state is JobState.SUCCEEDED:
                row.progress = 1.0

    def _progress_writer(self, job_id: str, also: Callable[[float, str], None] | None) -> Callable[[float, str], None]:
        def write(fraction: float, message: str) -> None:
            with Session(self.workspace.engine) as session, session.begin():
                session.execute(update(JobRecord).where(JobRecord.id == job_id).values(progress=min(max(fraction, 0.0), 1.0), message=message, heartbeat_at=now()))
            if also is not None:
                also(fraction, message)

        return write

    def _cancel_poller(self, job_id: str) -> Callable[[], bool]:
        last = {"at": 0.0, "value": False}

        def cancelled() -> bool:
            if not last["value"] and time.monotonic() - last["at"] >= CANCEL_POLL_S:
                with Session(self.workspace.engine) as session:
                    last["value"] = bool(session.scalar(select(JobRecord.cancel_requested).where(JobRecord.id == job_id)))
                last["at"] = time.monotonic()
            return bool(last["value"])

        return cancelled

    def _heartbeat(self, job_id: str, stop: threading.Event) -> None:
        while not stop.wait(HEARTBEAT_S):
            with Session(self.workspace.engine) as session, session.begin():
                session.execute(update(JobRecord).where(JobRecord.id == job_id).values(heartbeat_at=now()))

    def _reap(self) -> None:
        """Mark failed the running jobs whose process is gone."""
        host, stale = socket.gethostname(), now() - timedelta(seconds=STALE_AFTER_S)
        with Session(self.workspace.engine) as session, session.begin():
            for row in session.scalars(select(JobRecord).where(JobRecord.state == JobState.RUNNING.value)).all():
                gone = (row.host == host and row.pid is not None and not _alive(row.pid)) or row.heartbeat_at is None or as_utc(row.heartbeat_at) < stale
                if gone:
                    row.state, row.message, row.finished_at = JobState.FAILED.value, "failed", now()
                    row.error = f"the job's process (pid {row.pid} on {row.host}) ended without finishing: crashed or killed; nothing was registered"

    def _user(self, job_id: str) -> str:
        with Session(self.workspace.engine) as session:
            return self._row(session, job_id).user

    @staticmethod
    def _row(session: Session, job_id: str) -> JobRecord:
        row = session.get(JobRecord, job_id)
        if row is None:
            raise WorkspaceError(f"no job {job_id!r} in this workspace; `flute synth list` shows the jobs")
        return row

    @staticmethod
    def _saved_name(session: Session, row: JobRecord) -> str | None:
        if row.generator_id is None:
            return None
        saved = session.get_one(GeneratorRecord, row.generator_id)
        return f"{saved.name}:{saved.version}"


def _alive(pid: int) -> bool:
    """Whether a process with this pid exists (a zombie of ours counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return True
