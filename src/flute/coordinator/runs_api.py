"""The coordinator's study and statistics API: researchers run federated studies and DP
statistics without seeing a row (F-PIL-16/17/21, F-HUF-1, URS-10/11, F-SRS-8).

Routes (single-machine setting: the hubs run embedded from their homes, `flute.coordinator.runs`):
  POST /statistics               run a statistics request now (stats.query); JSON result
  POST /studies                  queue a study (study.submit); 202 with the job
  GET  /studies/{job_id}         state and progress (study.read, the submitter or an auditor)
  GET  /studies/{job_id}/result  the validation report's metrics as JSON
  GET  /studies/{job_id}/report  the validation report as HTML

Both runs are refused (403) unless every hub asked approved the researcher's access request
for the study; every accepted run is audited on the coordinator, every hub audits what it
computed and charges its own ledger.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, status
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field

from flute.coordinator.registry import Registry
from flute.coordinator.runs import EmbeddedHubs, HubsNotGranted, JobState, StudyJob, StudyRunner, UnknownHub, check_granted, report_metrics, run_statistics
from flute.governance.rbac import Action, Principal, Role, require
from flute.governance.service import RouterFactory, ServiceContext

if TYPE_CHECKING:
    from flute.evaluate.report import ValidationReport


class StatisticsBody(BaseModel):
    study: str = Field(min_length=1, max_length=64)
    variables: list[str] = Field(min_length=1, max_length=16)
    kind: str = "mean"
    pet: Literal["none", "dp", "he"] = "dp"
    epsilon: float | None = None
    min_hubs: int = Field(default=1, ge=1)
    hubs: list[str] | None = Field(default=None, description="Hubs to ask (default: every hub this coordinator runs).")


class StudyBody(BaseModel):
    spec: dict[str, Any] = Field(description="A study spec (the JSON of flute.engine.spec.StudySpec).")
    hubs: list[str] | None = Field(default=None, description="Hubs to train on (default: every hub this coordinator runs).")


def runs_router_factory(hubs: EmbeddedHubs) -> RouterFactory:
    """The router factory of the study/statistics routes over `hubs`."""

    def factory(context: ServiceContext) -> APIRouter:
        return runs_router(context, hubs)

    return factory


def runs_router(context: ServiceContext, hubs: EmbeddedHubs) -> APIRouter:
    registry = Registry(context.engine, context.audit)
    runner = StudyRunner(hubs)
    router = APIRouter(tags=["studies and statistics"])

    def audit(principal: Principal, action: str, target: str, details: dict[str, Any]) -> None:
        with context.engine.begin() as connection:
            context.audit.append(connection, action, target, details, actor=principal.user_id)

    def admitted(principal: Principal, study: str, names: list[str] | None) -> list[str]:
        chosen = sorted(hubs.homes) if names is None else list(names)
        if not chosen:
            raise HTTPException(status.HTTP_409_CONFLICT, detail="this coordinator runs no hubs: start it with --hub HOME for each hub")
        try:
            hubs.bindings(chosen)
            check_granted(registry, principal.user_id, study, chosen)
        except UnknownHub as exc:
            raise HTTPException(status.HTTP_400_BAD_REQUEST, detail=str(exc)) from exc
        except HubsNotGranted as exc:
            raise HTTPException(status.HTTP_403_FORBIDDEN, detail=str(exc)) from exc
        return chosen

    def own_job(job_id: str, principal: Principal) -> StudyJob:
        job = runner.job(job_id)
        if job is None or (job.researcher != principal.user_id and Role.AUDITOR not in principal.roles):
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no study job {job_id!r} of yours (GET it with the id POST /studies returned)")
        return job

    def finished_report(job: StudyJob) -> ValidationReport:
        with job.lock:
            state, message, report = job.state, job.message, job.report
        if state is not JobState.SUCCEEDED or report is None:
            raise HTTPException(status.HTTP_409_CONFLICT, detail=f"study job {job.job_id} has no report: state {state.value} {message}".strip())
        return report

    @router.post("/statistics")
    def statistics(body: StatisticsBody, principal: Annotated[Principal, Depends(require(Action.STATS_QUERY))]) -> dict[str, Any]:
        """Runs in the server's worker threads (a sync route), not on the event loop."""
        from flute.engine.stats_records import StatisticsRequest
        from flute.engine.stats_workflow import StatisticsFailed
        from flute.privacy.dp_stats import StatisticsQueryError

        try:
            request = StatisticsRequest(body.study, tuple(body.variables), body.kind, body.pet, body.epsilon, min_hubs=body.min_hubs)  # type: ignore[arg-type]
        except StatisticsQueryError as exc:
            raise HTTPException(status.HTTP_400_BAD_REQUEST, detail=str(exc)) from exc
        names = admitted(principal, body.study, body.hubs)
        audit(principal, "stats.query", body.study, {"hubs": names, "kind": body.kind, "pet": body.pet, "epsilon": body.epsilon, "variables": body.variables})
        try:
            return run_statistics(hubs, request, names).to_json()
        except StatisticsFailed as exc:
            raise HTTPException(status.HTTP_409_CONFLICT, detail=str(exc)) from exc

    @router.post("/studies", status_code=202)
    def submit(body: StudyBody, principal: Annotated[Principal, Depends(require(Action.STUDY_SUBMIT))]) -> dict[str, Any]:
        from flute.engine.spec import SpecError, StudySpec

        try:
            spec = StudySpec.from_json(json.dumps(body.spec), source="POST /studies spec")
        except SpecError as exc:
            raise HTTPException(status.HTTP_400_BAD_REQUEST, detail=str(exc)) from exc
        names = admitted(principal, spec.study_id, body.hubs)
        job = runner.submit(spec, principal.user_id, names)
        audit(principal, "study.submit", spec.study_id, {"job": job.job_id, "hubs": names, "model": spec.model.name, "pets": spec.pets.mode})
        return job.status_json()

    @router.get("/studies/{job_id}")
    def progress(job_id: str, principal: Annotated[Principal, Depends(require(Action.STUDY_READ))]) -> dict[str, Any]:
        return own_job(job_id, principal).status_json()

    @router.get("/studies/{job_id}/result")
    def result(job_id: str, principal: Annotated[Principal, Depends(require(Action.STUDY_READ))]) -> dict[str, Any]:
        return report_metrics(finished_report(own_job(job_id, principal)))

    @router.get("/studies/{job_id}/report", response_class=HTMLResponse)
    def report(job_id: str, principal: Annotated[Principal, Depends(require(Action.STUDY_READ))]) -> HTMLResponse:
        from flute.evaluate.html_report import render_html

        return HTMLResponse(render_html(finished_report(own_job(job_id, principal))))

    return router
