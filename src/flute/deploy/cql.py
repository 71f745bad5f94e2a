"""A logistic model as a FHIR R4 Library with CQL (F-STD-10: AI models in FHIR and/or CQL).

The CQL reads the 7 StudyVariables from FHIR the way the hubs' extraction does (index biopsy =
latest completed PR-Biopsy; latest final PSA / volume / PI-RADS on or before it; DRE suspicious
if any completed DRE says so; family history from VS-PCa), applies the inclusion rule, then the
model's exact preprocessing (natural log, category indicators, imputation when the manifest allows
it, standardisation) and the logistic formula. Both the CQL numbers and the Python-side evaluation come from one
`LinearRiskFormula`, written with every digit of each float64 (shortest round-trip form), so the
text holds exactly the model's parameters.

Precision: CQL's Decimal type has 8 decimal places, so a CQL engine's risk agrees with the
artifact's to about 1e-7, not bit for bit; the artifact (safetensors) stays the reference. Only
the `logistic_regression` family has a closed form CQL can state; other families raise
NotExpressibleInCql.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final

import numpy as np

from flute.cohort.variables import AGE, BIOPSY_TYPE, DRE, FAMILY_HISTORY, PIRADS, PROSTATE_VOLUME, PSA
from flute.deploy.artifact import ScoringModel
from flute.deploy.families import LOGISTIC_REGRESSION, LogisticPredictor
from flute.fhir import terminology as t
from flute.learn.preprocess import indicator_name

LIBRARY_TYPE_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/library-type"
LIBRARY_URL_BASE: Final = "urn:flute:library:"


class NotExpressibleInCql(ValueError):
    """The model family has no closed-form formula this exporter can write as CQL."""


@dataclass(frozen=True)
class LinearTerm:
    """coefficient * (x' - mean) / scale for model input `name`, read from raw feature `variable`
    (column `column`): x' = ln(x) when `log`; x' = 1 if x equals `level` else 0 for a category
    indicator (missing x: missing x'); else x. A missing x' becomes `imputation` (None: stays
    missing, so the risk is null)."""

    name: str
    variable: str
    column: int
    log: bool
    level: float | None
    mean: float
    scale: float
    coefficient: float
    imputation: float | None


@dataclass(frozen=True)
class LinearRiskFormula:
    """The intercept, the terms, and each training site's log-odds offset (`Manifest.
    site_intercepts`; the CQL's `Site` parameter picks one, none adds nothing)."""

    intercept: float
    terms: tuple[LinearTerm, ...]
    site_offsets: tuple[tuple[str, float], ...] = ()

    def risk(self, features: np.ndarray, site: str | None = None) -> np.ndarray:
        """P(csPCa) for raw feature rows (term order) at `site`, evaluated exactly as the CQL states it."""
        linear = np.full(features.shape[0], self.intercept + dict(self.site_offsets).get(site or "", 0.0))
        for term in self.terms:
            raw = features[:, term.column]
            value = np.log(raw) if term.log else raw
            if term.level is not None:
                value = np.where(np.isnan(raw), np.nan, (raw == term.level).astype(np.float64))
            if term.imputation is not None:
                value = np.where(np.isnan(value), term.imputation, value)
            linear = linear + term.coefficient * ((value - term.mean) / term.scale)
        return 1.0 / (1.0 + np.exp(-linear))


def linear_formula(model: ScoringModel) -> LinearRiskFormula:
    if model.manifest.model.model_type != LOGISTIC_REGRESSION or not isinstance(model.predictor, LogisticPredictor):
        raise NotExpressibleInCql(f"model type {model.manifest.model.model_type!r} cannot be exported as CQL; only {LOGISTIC_REGRESSION!r} can")
    prep = model.manifest.preprocessing
    sources = [
        (column, variable, level)
        for column, variable in enumerate(model.columns)
        for level in (prep.categories[variable][1:] if variable in prep.categories else (None,))
    ]
    terms = tuple(
        LinearTerm(
            name=variable if level is None else indicator_name(variable, level),
            variable=variable,
            column=column,
            log=variable in prep.log_transform,
            level=level,
            mean=prep.means[i],
            scale=prep.scales[i],
            coefficient=float(model.predictor.coefficients[i]),
            imputation=prep.imputation[i] if prep.impute_missing else None,
        )
        for i, (column, variable, level) in enumerate(sources)
    )
    return LinearRiskFormula(model.predictor.intercept, terms, tuple(model.manifest.site_intercepts.items()))


def cql_decimal(value: float) -> str:
    """A CQL Decimal literal with every digit of the float's shortest round-trip form (CQL has
    no exponent notation, so 1e-05 is written 0.00001)."""
    text = format(Decimal(repr(float(value))), "f")
    return text if "." in text else text + ".0"


def library_name(model: ScoringModel) -> str:
    """A CQL/FHIR computable name: letters and digits only, starting with a capital letter."""
    words = re.split(r"[^A-Za-z0-9]+", model.manifest.model.model_id)
    return "Flute" + "".join(word[:1].upper() + word[1:] for word in words if word)


_VARIABLES: Final = f"""define "Completed biopsies":
  [Procedure: "Biopsy"] B where B.status = 'completed'

define "Index biopsy":
  Last("Completed biopsies" B sort by Coalesce(performed as dateTime, (performed as Period).start))

define "Biopsy date":
  Coalesce("Index biopsy".performed as dateTime, ("Index biopsy".performed as Period).start)

define "Final results":
  [Observation] O where O.status in {{'final', 'amended', 'corrected'}}

define "Usable results":
  "Final results" O
    where "Biopsy date" is null or (O.effective as dateTime) is null or (O.effective as dateTime) same day or before "Biopsy date"

define "Latest PSA":
  Last("Usable results" O where O.code ~ "PSA" sort by (effective as dateTime))

define "Latest prostate volume":
  Last("Usable results" O where O.code ~ "Prostate volume" sort by (effective as dateTime))

define "Latest PI-RADS":
  Last("Usable results" O where O.code ~ "mpMRI prostate" sort by (effective as dateTime))

define "Completed DREs":
  [Procedure: "DRE"] D where D.status = 'completed'

define "{AGE}":
  Coalesce(
    Truncate(("Index biopsy".performed as Age).value),
    AgeInYearsAt("Biopsy date")
  )

define "{FAMILY_HISTORY}":
  if exists ([FamilyMemberHistory] F where F.status = 'completed' and exists (F.condition C where C.code in "VS-PCa")) then 1 else 0

define "{BIOPSY_TYPE}":
  if "Index biopsy".category ~ "Repeated biopsy" then 2
  else if "Index biopsy".category ~ "Initial biopsy" then 0
  else null

define "{PSA}":
  Round((convert FHIRHelpers.ToQuantity("Latest PSA".value as FHIR.Quantity) to 'ng/mL').value, 1)

define "{DRE}":
  if exists ("Completed DREs" D where D.outcome ~ "DRE suspicious") then 1
  else if exists ("Completed DREs" D where D.outcome ~ "DRE normal") then 0
  else null

define "{PROSTATE_VOLUME}":
  Round((convert FHIRHelpers.ToQuantity("Latest prostate volume".value as FHIR.Quantity) to 'mL').value, 1)

define "{PIRADS}":
  "Latest PI-RADS".value as integer

// Inclusion (the IG's PcaInclusionCriteria): any final PSA >= 3 ng/mL or a suspicious DRE.
define "Included":
  exists ("Final results" O where O.code ~ "PSA" and (convert FHIRHelpers.ToQuantity(O.value as FHIR.Quantity) to 'ng/mL').value >= 3.0)
    or exists ("Completed DREs" D where D.outcome ~ "DRE suspicious")
"""


def render_cql(model: ScoringModel) -> str:
    formula = linear_formula(model)
    identity = model.manifest.model

    def code(name: str, coding: t.Coding, system: str) -> str:
        return f"code \"{name}\": '{coding.code}' from \"{system}\" display '{coding.display}'"

    header = "\n".join(
        [
            f"library {library_name(model)} version '{identity.version}'",
            "",
            "using FHIR version '4.0.1'",
            "",
            "include FHIRHelpers version '4.0.1' called FHIRHelpers",
            "",
            f"codesystem \"SNOMEDCT\": '{t.SNOMED}'",
            f"codesystem \"LOINC\": '{t.LOINC}'",
            "",
            f"valueset \"VS-PCa\": '{t.VS_PCA.url}'",
            "",
            code("Biopsy", t.BIOPSY, "SNOMEDCT"),
            code("Initial biopsy", t.BIOPSY_INITIAL, "SNOMEDCT"),
            code("Repeated biopsy", t.BIOPSY_REPEATED, "SNOMEDCT"),
            code("PSA", t.PSA, "LOINC"),
            code("DRE", t.DRE, "SNOMEDCT"),
            code("DRE suspicious", t.DRE_SUSPICIOUS, "SNOMEDCT"),
            code("DRE normal", t.DRE_NORMAL, "SNOMEDCT"),
            code("Prostate volume", t.PROSTATE_VOLUME, "SNOMEDCT"),
            code("mpMRI prostate", t.MPMRI_PROSTATE, "SNOMEDCT"),
            "",
            f"parameter \"Decision threshold\" Decimal default {cql_decimal(model.threshold)}",
            *(['parameter "Site" String'] if formula.site_offsets else []),
            "",
            "context Patient",
            "",
        ]
    )
    inputs = []
    for term in formula.terms:
        value = f'Ln("{term.variable}")' if term.log else f'"{term.variable}"'
        if term.level is not None:
            value = f'if "{term.variable}" is null then null else if "{term.variable}" = {term.level:g} then 1.0 else 0.0'
            value = f"({value})"
        if term.imputation is not None:
            value = f"Coalesce({value}, {cql_decimal(term.imputation)})"
        inputs.append(f'define "{term.name} input":\n  ({value} - ({cql_decimal(term.mean)})) / {cql_decimal(term.scale)}\n')
    linear = "\n".join(f'    + ({cql_decimal(term.coefficient)}) * "{term.name} input"' for term in formula.terms)
    if formula.site_offsets:
        cases = "\n".join(f"    when '{site}' then {cql_decimal(offset)}" for site, offset in formula.site_offsets)
        inputs.append(f'// One intercept per training site; any other (or no) "Site" gets the common intercept.\ndefine "Site offset":\n  case "Site"\n{cases}\n    else 0.0\n  end\n')
        linear = '    + "Site offset"\n' + linear
    model_part = f"""// Model {identity.model_id} {identity.version}: standardised inputs, then the logistic formula.
{chr(10).join(inputs)}
define "Linear predictor":
  ({cql_decimal(formula.intercept)})
{linear}

define "csPCa risk":
  if "Included" then 1.0 / (1.0 + Exp(-"Linear predictor")) else null

define "Biopsy recommended":
  "csPCa risk" >= "Decision threshold"
"""
    return f"{header}\n{_VARIABLES}\n{model_part}"


def cql_library(model: ScoringModel) -> dict[str, Any]:
    """The FHIR R4 Library (type logic-library) carrying the CQL as base64 text/cql content."""
    identity = model.manifest.model
    name = library_name(model)
    return {
        "resourceType": "Library",
        "id": f"{identity.model_id}-{identity.version}".replace("+", "-")[:64],
        "url": f"{LIBRARY_URL_BASE}{identity.model_id}",
        "version": identity.version,
        "name": name,
        "title": identity.title,
        "status": "active",
        "type": {"coding": [{"system": LIBRARY_TYPE_SYSTEM, "code": "logic-library", "display": "Logic Library"}]},
        "description": (
            f"csPCa risk model {identity.model_id} {identity.version} (federated study {model.manifest.provenance.study_id}) "
            "as CQL over the FLUTE IG profiles; `csPCa risk` is the probability, `Biopsy recommended` applies the decision threshold."
        ),
        "parameter": [
            {"name": "Decision threshold", "use": "in", "min": 0, "max": "1", "type": "decimal"},
            *([{"name": "Site", "use": "in", "min": 0, "max": "1", "type": "string"}] if model.manifest.site_intercepts else []),
            {"name": "csPCa risk", "use": "out", "min": 0, "max": "1", "type": "decimal"},
            {"name": "Biopsy recommended", "use": "out", "min": 0, "max": "1", "type": "boolean"},
        ],
        "content": [{"contentType": "text/cql", "data": base64.b64encode(render_cql(model).encode("utf-8")).decode("ascii")}],
    }
