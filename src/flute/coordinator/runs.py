"""Studies and statistics the coordinator runs for researchers (F-PIL-16/17/21, F-HUF-1, URS-10/11).

SINGLE-MACHINE SETTING: the coordinator service runs them in EMBEDDED mode over hub homes
registered with it (`flute coordinator api --hub HOME ...`: hub name -> hub home), with the same
ServerApp/ClientApp and the same hub-side consent, ledger and audit as a deployment. Across
machines the coordinator drives hubs over Flower instead (`flute coordinator submit`).

The coordinator refuses a run unless every hub it would ask approved the researcher's access
request for the study (the hubs enforce their grants anyway: this only answers early and
clearly). Studies run one at a time on one worker thread, so a long study never blocks the
service's event loop and two studies never interleave their progress; a job's state lives in
memory (a restarted service forgets finished jobs - their hubs' audit logs and ledgers do not).
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flute.coordinator.registry import Registry
from flute.governance.access import RequestStatus

if TYPE_CHECKING:
    from flute.engine.embedded import HubBinding
    from flute.engine.stats_records import StatisticsRequest
    from flute.engine.stats_workflow import StatisticsResult
    from flute.evaluate.report import NamedResult, ValidationReport
    from flute.engine.spec import StudySpec


class HubsNotGranted(PermissionError):
    """A hub the run would ask has not approved the researcher's access request for the study."""


class UnknownHub(LookupError):
    """The run names a hub this coordinator has no home for."""


@dataclass(frozen=True)
class EmbeddedHubs:
    """The hubs this coordinator runs embedded: hub name -> hub home (single-machine setting)."""

    homes: Mapping[str, Path]

    @classmethod
    def from_homes(cls, homes: Sequence[Path]) -> EmbeddedHubs:
        from flute.hub.home import load_config

        named = {load_config(home).name: home for home in homes}
        if len(named) != len(homes):
            raise ValueError(f"two of the hub homes {[str(h) for h in homes]} belong to the same hub name")
        return cls(named)

    def bindings(self, names: Sequence[str]) -> list[HubBinding]:
        from flute.engine.embedded import HubBinding

        unknown = sorted(set(names) - set(self.homes))
        if unknown:
            raise UnknownHub(f"this coordinator runs no hub named {unknown}; it knows {sorted(self.homes) or 'none'}")
        return [HubBinding(name, home=self.homes[name]) for name in names]


def check_granted(registry: Registry, researcher: str, study: str, hubs: Sequence[str]) -> None:
    """HubsNotGranted unless each of `hubs` approved an access request of `researcher` for `study`."""
    approved = {r.hub for r in registry.requests(researcher=researcher, status=RequestStatus.APPROVED) if r.study == study}
    missing = [hub for hub in hubs if hub not in approved]
    if missing:
        raise HubsNotGranted(
            f"study {study!r}: no approved access request of {researcher!r} at {missing}; "
            "request access (POST /access-requests) and wait for the data owners' decisions"
        )


def run_statistics(hubs: EmbeddedHubs, request: StatisticsRequest, names: Sequence[str]) -> StatisticsResult:
    """One statistics request over the named embedded hubs (the hubs charge their ledgers)."""
    from flute.engine.stats_workflow import run_statistics_embedded

    return run_statistics_embedded(request, hubs.bindings(names))


class JobState(str, Enum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


@dataclass
class StudyJob:
    """A submitted study: who, where, how far, and (when done) its validation report."""

    job_id: str
    study_id: str
    researcher: str
    hubs: tuple[str, ...]
    state: JobState = JobState.QUEUED
    task: str = ""
    round: int = 0
    max_rounds: int = 0
    message: str = ""
    dropped_hubs: tuple[str, ...] = ()
    report: ValidationReport | None = None
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def status_json(self) -> dict[str, Any]:
        with self.lock:
            return {
                "id": self.job_id, "study": self.study_id, "researcher": self.researcher, "hubs": list(self.hubs),
                "state": self.state.value, "task": self.task, "round": self.round, "max_rounds": self.max_rounds,
                "message": self.message, "dropped_hubs": list(self.dropped_hubs), "has_report": self.report is not None,
            }


def report_metrics(report: ValidationReport) -> dict[str, Any]:
    """The validation report's metrics as JSON: one row per site, pooled, held-out site and comparator."""

    def row(group: str, item: NamedResult) -> dict[str, Any]:
        metrics = item.metrics
        calibration = metrics.calibration
        return {
            "group": group, "name": item.name, "n": metrics.n, "events": metrics.events,
            "auroc": metrics.auroc.value, "auroc_ci": [metrics.auroc.ci_low, metrics.auroc.ci_high],
            "auroc_error_bound": metrics.auroc.error_bound,
            "calibration_intercept": calibration.intercept.value if calibration else None,
            "calibration_slope": calibration.slope.value if calibration else None,
            "calibration_problem": metrics.calibration_problem,
        }

    rows = [row("site", site) for site in report.sites] + [row("pooled", report.pooled)]
    rows += [row("held-out site", item) for item in report.internal_external] + [row("comparator", item) for item in report.comparators]
    return {
        "study": report.study.study_id, "mode": report.run.mode, "pets": list(report.run.pets), "rounds": report.run.rounds,
        "epsilon": report.run.epsilon, "delta": report.run.delta, "methods": report.methods, "metrics": rows,
    }


class _ProgressFeed(logging.Handler):
    """Copies the workflow's round events into the running job (one study runs at a time)."""

    def __init__(self, job: StudyJob) -> None:
        super().__init__(logging.INFO)
        self.job = job

    def emit(self, record: logging.LogRecord) -> None:
        event = getattr(record, "flute_round", None)
        if event is not None:
            with self.job.lock:
                self.job.task, self.job.round, self.job.max_rounds = event.task, event.round, event.max_rounds


class StudyRunner:
    """Queues studies on one worker thread and keeps their jobs."""

    def __init__(self, hubs: EmbeddedHubs) -> None:
        self.hubs = hubs
        self._jobs: dict[str, StudyJob] = {}
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="flute-study")

    def submit(self, spec: StudySpec, researcher: str, names: Sequence[str]) -> StudyJob:
        bindings = self.hubs.bindings(names)
        job = StudyJob(secrets.token_hex(8), spec.study_id, researcher, tuple(names), max_rounds=spec.training.rounds)
        self._jobs[job.job_id] = job
        self._executor.submit(self._run, job, spec, bindings)
        return job

    def job(self, job_id: str) -> StudyJob | None:
        return self._jobs.get(job_id)

    @staticmethod
    def _run(job: StudyJob, spec: StudySpec, bindings: list[HubBinding]) -> None:
        from flute.engine.apps import client_app, server_app
        from flute.engine.embedded import run_embedded, study_run_config
        from flute.engine.validation import NoValidation, validation_report
        from flute.engine.workflow import LOGGER

        with job.lock:
            job.state = JobState.RUNNING
        feed = _ProgressFeed(job)
        previous_level = LOGGER.level
        LOGGER.addHandler(feed)
        LOGGER.setLevel(logging.INFO)
        try:
            result = run_embedded(server_app, client_app, bindings, study_run_config(spec))
            try:
                report, message = validation_report(result, mode="embedded"), "finished"
            except NoValidation as exc:
                report, message = None, str(exc)
            with job.lock:
                job.state, job.report, job.message, job.dropped_hubs = JobState.SUCCEEDED, report, message, tuple(result.dropped_hubs)
        except Exception as exc:  # noqa: BLE001 - any failure of the run is the job's outcome, reported to the researcher
            with job.lock:
                job.state, job.message = JobState.FAILED, f"{type(exc).__name__}: {exc}"
        finally:
            LOGGER.removeHandler(feed)
            LOGGER.setLevel(previous_level)
