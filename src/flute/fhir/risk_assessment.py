"""The csPCa prediction as FHIR R4 RiskAssessment resources (F-STD-7, F-STD-1, F-STD-2).

One RiskAssessment per patient: `subject` the Patient, `occurrenceDateTime` when it was scored,
`status` final, `method` the model (a coding of system MODEL_SYSTEM with the model id as code and
its semantic version as `version`; the same id and version name the model's FHIR Library), `basis`
the Observations and Procedures the study variables were read from, and one prediction whose
`outcome` is csPCa, with `probabilityDecimal`, `qualitativeRisk` (high at or above the decision
threshold, low below) and the recommendation in `mitigation`.

Outcome coding: SNOMED CT has no concept for "clinically significant" prostate cancer, so the
outcome carries 399068003 "Malignant tumor of prostate" and says in its text that the predicted
event is ISUP grade group >= 2 at biopsy.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Iterable

from flute.fhir.terminology import VS_PCA, Coding

MODEL_SYSTEM: Final = "urn:flute:model"
RISK_PROBABILITY_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/risk-probability"
PROSTATE_CANCER: Final[Coding] = next(c for c in VS_PCA.codings if c.code == "399068003")
CSPCA_TEXT: Final = "Clinically significant prostate cancer (ISUP grade group >= 2) at biopsy"
BIOPSY_RECOMMENDED: Final = "Biopsy recommended"
BIOPSY_MAY_BE_AVOIDED: Final = "Biopsy may be avoided"


@dataclass(frozen=True)
class ModelReference:
    """The model that produced a prediction, as RiskAssessment.method names it."""

    model_id: str
    version: str
    title: str


@dataclass(frozen=True)
class CsPcaPrediction:
    """One patient's predicted csPCa risk, the decision threshold, and the records it rests on
    (`basis`: 'Type/id' of the Observations and Procedures read)."""

    patient_id: str
    probability: float
    threshold: float
    basis: tuple[str, ...]

    @property
    def biopsy_recommended(self) -> bool:
        return self.probability >= self.threshold


def risk_assessment(prediction: CsPcaPrediction, model: ModelReference, occurrence: datetime, assessment_id: str | None = None) -> dict[str, Any]:
    """A FHIR R4 RiskAssessment (JSON object) for one prediction."""
    recommended = prediction.biopsy_recommended
    comparison = ">=" if recommended else "<"
    return {
        "resourceType": "RiskAssessment",
        "id": assessment_id or str(uuid.uuid4()),
        "status": "final",
        "code": {"text": "Risk of clinically significant prostate cancer before biopsy"},
        "method": {
            "coding": [{"system": MODEL_SYSTEM, "code": model.model_id, "version": model.version, "display": model.title}],
            "text": f"{model.title} ({model.model_id} {model.version})",
        },
        "subject": {"reference": f"Patient/{prediction.patient_id}"},
        "occurrenceDateTime": occurrence.isoformat(),
        "basis": [{"reference": key} for key in prediction.basis],
        "prediction": [
            {
                "outcome": {"coding": [PROSTATE_CANCER.to_fhir()], "text": CSPCA_TEXT},
                "probabilityDecimal": prediction.probability,
                "qualitativeRisk": {
                    "coding": [
                        {"system": RISK_PROBABILITY_SYSTEM, "code": "high", "display": "High likelihood"}
                        if recommended
                        else {"system": RISK_PROBABILITY_SYSTEM, "code": "low", "display": "Low likelihood"}
                    ]
                },
                "rationale": f"predicted risk {prediction.probability:.4f} {comparison} decision threshold {prediction.threshold:g}",
            }
        ],
        "mitigation": BIOPSY_RECOMMENDED if recommended else BIOPSY_MAY_BE_AVOIDED,
    }


def risk_assessment_bundle(assessments: Iterable[dict[str, Any]], timestamp: datetime) -> dict[str, Any]:
    """A `collection` Bundle of RiskAssessments (fullUrl urn:uuid:<id>)."""
    entries = [{"fullUrl": f"urn:uuid:{a['id']}", "resource": a} for a in assessments]
    return {
        "resourceType": "Bundle",
        "id": str(uuid.uuid4()),
        "type": "collection",
        "timestamp": timestamp.isoformat(),
        "entry": entries,
    }
