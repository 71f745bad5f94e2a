"""The csPCa scoring service: a verified model behind HTTP (F-PIL-24, F-STD-7).

    POST /score   a FHIR Bundle (one or many patients) -> 200 Bundle of RiskAssessments;
                  400 + OperationOutcome when the body is not a readable FHIR document,
                  422 + OperationOutcome when it is, but holds problems (validation, missing
                  variables, patients outside the intended population)
    GET  /health  liveness and the model served
    GET  /model   the manifest summary (identity, inputs, threshold, provenance, validation)
    GET  /openapi.json

The model is verified before the app is built (`create_app` takes a ScoringModel, which only
`load_verified` makes), so a tampered artifact never starts a service. Scoring is CPU-bound and
runs in the worker thread pool, not on the event loop.
"""

from __future__ import annotations

from typing import Any, Final

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from flute.deploy.artifact import ScoringModel
from flute.deploy.manifest import PrivacyRecord, TrainingProvenance, ValidationMetrics
from flute.deploy.scoring import assessments_bundle, score_units
from flute.fhir.issues import Issue, Severity
from flute.fhir.readers import DEFAULT_MAX_FILE_BYTES, document_units
from flute.fhir.validate import operation_outcome

FHIR_JSON: Final = "application/fhir+json"
MAX_BODY_BYTES: Final = DEFAULT_MAX_FILE_BYTES


class ModelSummary(BaseModel):
    model_id: str
    version: str
    model_type: str
    title: str
    features: list[str]
    decision_threshold: float
    impute_missing: bool
    provenance: TrainingProvenance
    privacy: PrivacyRecord
    validation: ValidationMetrics | None
    site_intercepts: dict[str, float]
    site: str | None


class Health(BaseModel):
    status: str
    model_id: str
    version: str


_BUNDLE_BODY: Final[dict[str, Any]] = {
    "requestBody": {
        "required": True,
        "description": "A FHIR R4 Bundle (transaction, batch or collection) with each Patient and the records of the study variables.",
        "content": {media: {"schema": {"type": "object", "title": "FHIR Bundle"}} for media in (FHIR_JSON, "application/json")},
    },
    "responses": {
        "200": {"description": "Bundle (collection) of RiskAssessments", "content": {FHIR_JSON: {"schema": {"type": "object"}}}},
        "400": {"description": "OperationOutcome: the body is not a readable FHIR document", "content": {FHIR_JSON: {"schema": {"type": "object"}}}},
        "422": {"description": "OperationOutcome: every problem found; nothing was scored", "content": {FHIR_JSON: {"schema": {"type": "object"}}}},
    },
}


def create_app(model: ScoringModel) -> FastAPI:
    identity = model.manifest.model
    app = FastAPI(
        title="FLUTE csPCa scoring service",
        version=identity.version,
        description=f"Scores FHIR Bundles with model {identity.model_id} {identity.version}; answers FHIR RiskAssessments.",
    )

    @app.get("/health")
    def health() -> Health:
        return Health(status="ok", model_id=identity.model_id, version=identity.version)

    @app.get("/model")
    def model_summary() -> ModelSummary:
        manifest = model.manifest
        return ModelSummary(
            model_id=identity.model_id,
            version=identity.version,
            model_type=identity.model_type,
            title=identity.title,
            features=list(manifest.feature_names),
            decision_threshold=manifest.decision.threshold,
            impute_missing=manifest.preprocessing.impute_missing,
            provenance=manifest.provenance,
            privacy=manifest.privacy,
            validation=manifest.validation,
            site_intercepts=manifest.site_intercepts,
            site=model.site,
        )

    @app.post("/score", openapi_extra=_BUNDLE_BODY, response_class=Response)
    async def score(request: Request) -> Response:
        body = await _bounded_body(request)
        if body is None:
            issue = Issue(Severity.ERROR, "reader.oversized", f"the request body is above {MAX_BODY_BYTES} bytes; send fewer patients per request (rule reader.oversized)", code="too-long")
            return _fhir(operation_outcome([issue]), 400)
        return await run_in_threadpool(_score_body, model, body)

    return app


def _score_body(model: ScoringModel, body: bytes) -> Response:
    report = score_units(document_units(body, "request"), model)
    if report.failed:
        unreadable = any(issue.rule.startswith("reader.") for issue in report.issues if issue.severity.blocks_import)
        return _fhir(operation_outcome(report.issues), 400 if unreadable else 422)
    return _fhir(assessments_bundle(report, model), 200)


async def _bounded_body(request: Request) -> bytes | None:
    """The body, or None once it exceeds MAX_BODY_BYTES (not read further)."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _fhir(document: dict[str, Any], status: int) -> Response:
    return Response(orjson.dumps(document), status_code=status, media_type=FHIR_JSON)


def serve(model: ScoringModel, host: str, port: int) -> None:
    """Run the service in this process until interrupted."""
    import uvicorn

    uvicorn.run(create_app(model), host=host, port=port, log_level="warning")
