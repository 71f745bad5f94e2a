"""The coordinator's synthetic-data API: the researcher SDK's `client.synth` (F-IMSD-1/2/10/12/
15/16/17, NF-IMSD-5/7, F-HUF-14). The coordinator's synthetic-data workspace lives in its home
(`COORDINATOR_HOME/synth`); training runs over the hubs it runs embedded, each training a job in
its own process.

Routes:
  GET    /synth/generators                       the generator plugins and their defaults
  GET    /synth/drafts/{generator}               your draft next to the defaults
  PUT    /synth/drafts/{generator}               save (merge) your draft
  DELETE /synth/drafts/{generator}               reset it
  POST   /synth/jobs                             start a training job (study.submit); 202
  GET    /synth/jobs, /synth/jobs/{id}           your jobs with state and progress
  POST   /synth/jobs/{id}/cancel                 cancel one
  GET    /synth/generators/saved                 your saved generators
  POST   /synth/datasets                         sample a saved generator into a new dataset version
  GET    /synth/datasets                         your dataset versions (with their evaluation)
  GET    /synth/datasets/{name}/{version}/csv    the CSV; .../schema the schema JSON; .../report the HTML report
  GET    /synth/usage                            your usage (rows generated, trainings, CPU seconds)

Training is refused (403) unless every hub asked approved the researcher's access request for
the study, as for studies; the hubs charge their own ledgers. What leaves is synthetic only.
Evaluation reads real rows, so it runs at the data owner's (`flute synth evaluate`); its result
and report are served here once stored with the dataset.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, status
from fastapi.responses import HTMLResponse, PlainTextResponse
from pydantic import BaseModel, Field

from flute.coordinator.registry import Registry
from flute.coordinator.runs import EmbeddedHubs, HubsNotGranted, UnknownHub, check_granted
from flute.governance.rbac import Action, Principal, Role, require
from flute.governance.service import RouterFactory, ServiceContext

WORKSPACE_DIR = "synth"
Reader = Annotated[Principal, Depends(require(Action.STUDY_READ))]
Submitter = Annotated[Principal, Depends(require(Action.STUDY_SUBMIT))]


class TrainBody(BaseModel):
    study: str = Field(min_length=1, max_length=64)
    variables: list[str] = Field(min_length=1, max_length=16)
    generator: str = "marginal"
    epsilon: float | None = Field(default=None, gt=0, description="Per-record epsilon each hub spends; None = non-DP (only where the owners accept it).")
    delta: float = Field(default=1e-6, ge=0, lt=1)
    hyperparameters: dict[str, Any] = Field(default_factory=dict)
    from_draft: bool = False
    name: str | None = Field(default=None, max_length=64)
    hubs: list[str] | None = Field(default=None, description="Hubs to train on (default: every hub this coordinator runs).")
    seed: int | None = None


class SampleBody(BaseModel):
    generator: str = Field(min_length=1, description="A saved generator NAME or NAME:VERSION.")
    rows: int = Field(ge=1, le=10_000_000)
    where: str = ""
    seed: int | None = None
    name: str | None = Field(default=None, max_length=64)


class DraftBody(BaseModel):
    hyperparameters: dict[str, Any]


def synth_router_factory(hubs: EmbeddedHubs, workspace_home: Path) -> RouterFactory:
    def factory(context: ServiceContext) -> APIRouter:
        return synth_router(context, hubs, workspace_home)

    return factory


def synth_router(context: ServiceContext, hubs: EmbeddedHubs, workspace_home: Path) -> APIRouter:
    from flute.synth.conditions import ConditionError
    from flute.synth.generators import GeneratorError, generator, generator_names
    from flute.synth.workspace.home import WorkspaceError
    from flute.synth.workspace.jobs import JobInfo, Jobs, TrainRequest
    from flute.synth.workspace.service import sample_dataset
    from flute.synth.workspace.store import DatasetVersion, Reference, SynthWorkspace

    opened: list[SynthWorkspace] = []
    opening = threading.Lock()

    def workspace_now() -> SynthWorkspace:
        """Opened (created) on first use, so a coordinator that never makes synthetic data has no workspace."""
        with opening:
            if not opened:
                opened.append(SynthWorkspace.open(workspace_home))
            return opened[0]

    registry = Registry(context.engine, context.audit)
    router = APIRouter(prefix="/synth", tags=["synthetic data"])

    def audit(principal: Principal, action: str, target: str, details: dict[str, Any]) -> None:
        with context.engine.begin() as connection:
            context.audit.append(connection, action, target, details, actor=principal.user_id)

    def sees(principal: Principal, owner: str) -> bool:
        return owner == principal.user_id or Role.AUDITOR in principal.roles

    def bad_request(exc: Exception) -> HTTPException:
        return HTTPException(status.HTTP_400_BAD_REQUEST, detail=str(exc))

    def own_job(job_id: str, principal: Principal) -> JobInfo:
        try:
            info = Jobs(workspace_now()).job(job_id)
        except WorkspaceError:
            info = None
        if info is None or not sees(principal, info.user):
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no synthetic-data job {job_id!r} of yours")
        return info

    def own_dataset(name: str, version: int, principal: Principal) -> DatasetVersion:
        try:
            dataset = workspace_now().dataset(Reference(name, version))
        except WorkspaceError:
            dataset = None
        if dataset is None or not sees(principal, dataset.created_by):
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no synthetic dataset {name}:{version} of yours")
        return dataset

    @router.get("/generators")
    def generators(principal: Reader) -> list[dict[str, Any]]:
        del principal
        return [{"name": n, "description": generator(n).description, "defaults": generator(n).default_hyperparameters()} for n in generator_names()]

    @router.get("/drafts/{plugin}")
    def draft(plugin: str, principal: Reader) -> dict[str, Any]:
        try:
            return {"defaults": generator(plugin).default_hyperparameters(), "draft": workspace_now().draft(principal.user_id, plugin)}
        except GeneratorError as exc:
            raise bad_request(exc) from exc

    @router.put("/drafts/{plugin}")
    def save_draft(plugin: str, body: DraftBody, principal: Reader) -> dict[str, Any]:
        try:
            return {"draft": workspace_now().save_draft(principal.user_id, plugin, body.hyperparameters)}
        except (GeneratorError, WorkspaceError) as exc:
            raise bad_request(exc) from exc

    @router.delete("/drafts/{plugin}")
    def reset_draft(plugin: str, principal: Reader) -> dict[str, Any]:
        try:
            return {"defaults": workspace_now().reset_draft(principal.user_id, plugin)}
        except GeneratorError as exc:
            raise bad_request(exc) from exc

    @router.post("/jobs", status_code=202)
    def train(body: TrainBody, principal: Submitter) -> dict[str, Any]:
        chosen = sorted(hubs.homes) if body.hubs is None else list(body.hubs)
        if not chosen:
            raise HTTPException(status.HTTP_409_CONFLICT, detail="this coordinator runs no hubs: start it with --hub HOME for each hub")
        try:
            hubs.bindings(chosen)
            check_granted(registry, principal.user_id, body.study, chosen)
        except UnknownHub as exc:
            raise bad_request(exc) from exc
        except HubsNotGranted as exc:
            raise HTTPException(status.HTTP_403_FORBIDDEN, detail=str(exc)) from exc
        try:
            values = workspace_now().hyperparameters(principal.user_id, body.generator, body.hyperparameters, from_draft=body.from_draft)
            request = TrainRequest(
                tuple(str(hubs.homes[name].resolve()) for name in chosen), tuple(body.variables), body.study, body.generator,
                body.name or f"{body.study}-{body.generator}", body.epsilon, body.delta, values, body.seed,
            )
            info = Jobs(workspace_now()).submit(principal.user_id, request)
        except (GeneratorError, WorkspaceError) as exc:
            raise bad_request(exc) from exc
        audit(principal, "synth.train", body.study, {"job": info.id, "hubs": chosen, "generator": body.generator, "epsilon": body.epsilon, "variables": body.variables})
        Jobs(workspace_now()).start(info.id)
        return info.to_json()

    @router.get("/jobs")
    def list_jobs(principal: Reader) -> list[dict[str, Any]]:
        return [info.to_json() for info in Jobs(workspace_now()).jobs() if sees(principal, info.user)]

    @router.get("/jobs/{job_id}")
    def job(job_id: str, principal: Reader) -> dict[str, Any]:
        return own_job(job_id, principal).to_json()

    @router.post("/jobs/{job_id}/cancel")
    def cancel(job_id: str, principal: Submitter) -> dict[str, Any]:
        own_job(job_id, principal)
        return Jobs(workspace_now()).cancel(job_id).to_json()

    @router.get("/generators/saved")
    def saved(principal: Reader) -> list[dict[str, Any]]:
        return [g.to_json() for g in workspace_now().saved_generators() if sees(principal, g.created_by)]

    @router.post("/datasets", status_code=201)
    def sample(body: SampleBody, principal: Reader) -> dict[str, Any]:
        try:
            reference = Reference.parse(body.generator)
            source = workspace_now().saved_generator(reference)
        except WorkspaceError as exc:
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail=str(exc)) from exc
        if not sees(principal, source.created_by):
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no saved generator {body.generator!r} of yours")
        try:
            result = sample_dataset(workspace_now(), Reference(source.name, source.version), body.rows, user=principal.user_id, name=body.name, where=body.where, seed=body.seed)
        except (WorkspaceError, ConditionError, ValueError) as exc:
            raise bad_request(exc) from exc
        return result.dataset.to_json() | {"condition_probability": result.condition_probability, "exact_rate": result.exact_rate}

    @router.get("/datasets")
    def datasets(principal: Reader) -> list[dict[str, Any]]:
        return [d.to_json() for d in workspace_now().datasets() if sees(principal, d.created_by)]

    @router.get("/datasets/{name}/{version}/csv", response_class=PlainTextResponse)
    def csv(name: str, version: int, principal: Reader) -> PlainTextResponse:
        return PlainTextResponse(own_dataset(name, version, principal).csv.read_text(encoding="utf-8"), media_type="text/csv")

    @router.get("/datasets/{name}/{version}/schema")
    def schema(name: str, version: int, principal: Reader) -> dict[str, Any]:
        return dict(json.loads(own_dataset(name, version, principal).schema.read_text(encoding="utf-8")))

    @router.get("/datasets/{name}/{version}/report", response_class=HTMLResponse)
    def report(name: str, version: int, principal: Reader) -> HTMLResponse:
        dataset = own_dataset(name, version, principal)
        if dataset.report is None:
            raise HTTPException(status.HTTP_409_CONFLICT, detail=f"{name}:{version} has not been evaluated yet: its data owner runs `flute synth evaluate`")
        return HTMLResponse(dataset.report.read_text(encoding="utf-8"))

    @router.get("/usage")
    def usage(principal: Reader) -> list[dict[str, Any]]:
        return [u.to_json() for u in workspace_now().usage() if sees(principal, u.user)]

    return router
