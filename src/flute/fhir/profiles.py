"""The FLUTE IG's profiles as declared data (NF-PIL-2/3: the common model validators check).

Every constraint a resource must meet is a value below, not code: the rule engine
(validate.py) compiles these declarations once at import into fast closures. Each rule has a
stable id (`psa.unit`, `biopsy.category`, ...) that appears in every Issue it raises.

How a resource is matched to a profile:
1. If `meta.profile` names FLUTE profiles of its type (under http://hl7.eu/fhir/ig/flute or
   the https://flute.com base the IG's own examples use; a `|version` suffix is ignored), the
   resource is validated against exactly those. Naming a FLUTE profile of another resource
   type is an error, an unknown FLUTE profile name a warning.
2. Otherwise it is recognised by content: an Observation or Procedure by the profile's fixed
   `code`, a FamilyMemberHistory by a `condition.code` in VS-PCa, any Patient as Patient.
3. Base rules of the resource type (id, status, required references) always apply. A
   resource no profile claims is kept and reported (information) as unused by the study.

Deliberate differences from the IG's StructureDefinitions, each for real-world data:
- PR-Biopsy `performedAge 1..`: relaxed to "one of performedAge / performedDateTime /
  performedPeriod", because the age at biopsy can be derived from Patient.birthDate and the
  biopsy date.
- Fixed `valueQuantity.unit`/`code` (ng/mL, cm3): any unit of units.py's tables is accepted
  and harmonised on extraction (NF-PIL-1); others are errors.
- Invariant rule-1 (at most one decimal) is a warning, not an error: the value is rounded to
  one decimal on extraction (units.py) instead of losing the measurement.
- `valueQuantity.unit` text is not required to equal the code.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Final, Mapping, Union

from flute.cohort.variables import AGE, PROSTATE_VOLUME, PSA, VARIABLES_BY_NAME
from flute.fhir import terminology as t
from flute.fhir.units import AGE_UNITS, PSA_UNITS, VOLUME_UNITS, UnitTable


class Kind(str, Enum):
    """JSON type an element's values must have."""

    OBJECT = "a JSON object"
    STRING = "a non-empty string"
    INTEGER = "an integer"


@dataclass(frozen=True)
class Shape:
    """Cardinality and JSON shape of an element (FHIR `min..max`, array or single)."""

    min: int = 0
    max: int | None = 1  # None = unbounded (*)
    kind: Kind = Kind.OBJECT
    repeats: bool = False  # FHIR JSON array (base cardinality ..*)

    @property
    def cardinality(self) -> str:
        return f"{self.min}..{'*' if self.max is None else self.max}"


OPTIONAL: Final = Shape()
REQUIRED: Final = Shape(min=1)


@dataclass(frozen=True)
class Present:
    """The element only has to meet its shape (cardinality and JSON type)."""

    rule: str
    path: str
    shape: Shape = REQUIRED


@dataclass(frozen=True)
class FixedCoding:
    """Every CodeableConcept at `path` must carry this coding (FHIR pattern)."""

    rule: str
    path: str
    coding: t.Coding
    shape: Shape = OPTIONAL


@dataclass(frozen=True)
class InValueSet:
    """Every CodeableConcept at `path` must carry a coding from the value set (required binding)."""

    rule: str
    path: str
    value_set: t.ValueSet
    shape: Shape = REQUIRED


@dataclass(frozen=True)
class InCodes:
    """A `code` element (a plain string) bound to a small code list, e.g. status."""

    rule: str
    path: str
    codes: frozenset[str]
    what: str
    shape: Shape = Shape(min=1, kind=Kind.STRING)


@dataclass(frozen=True)
class PatientReference:
    """A Reference(Patient) element: `reference` is `Patient/<id>` (relative or absolute)."""

    rule: str
    path: str
    shape: Shape = REQUIRED


@dataclass(frozen=True)
class QuantityValue:
    """A Quantity in a harmonisable unit within a plausible range.

    Fires `<prefix>.value` (no numeric value), `<prefix>.unit` (unit not accepted or not UCUM),
    `<prefix>.unit-code` (warning: unit text only), `<prefix>.decimals` (warning: more than one
    decimal where the IG allows one) and `<prefix>.range` (outside the plausible range, in the
    canonical unit); the shape of the Quantity itself is checked under `rule`.
    """

    rule: str
    path: str
    prefix: str
    units: UnitTable
    minimum: float
    maximum: float
    one_decimal: bool
    shape: Shape = REQUIRED


@dataclass(frozen=True)
class IntegerRange:
    """An integer element within `minimum..maximum` (PI-RADS: IG invariant rule-2)."""

    rule: str
    path: str
    minimum: int
    maximum: int
    shape: Shape = Shape(min=1, kind=Kind.INTEGER)


@dataclass(frozen=True)
class DateTime:
    """A FHIR date or dateTime string (YYYY[-MM[-DD[Thh:mm:ss[.s][Z|+hh:mm]]]])."""

    rule: str
    path: str
    shape: Shape = Shape(kind=Kind.STRING)


@dataclass(frozen=True)
class OneOf:
    """A choice element `[x]`: at most one of `choices` present, at least `min` of them."""

    rule: str
    choices: tuple[str, ...]
    min: int = 1


Rule = Union[Present, FixedCoding, InValueSet, InCodes, PatientReference, QuantityValue, IntegerRange, DateTime, OneOf]


@dataclass(frozen=True)
class Profile:
    """One IG profile: its resource type, how to recognise it without meta.profile, its rules."""

    key: str
    name: str
    resource_type: str
    rules: tuple[Rule, ...]
    recognised_by: InValueSet | FixedCoding | None = None  # None: every resource of the type

    @property
    def url(self) -> str:
        return f"{t.IG_CANONICAL}/StructureDefinition/{self.name}"


def rule_ids(rule: Rule) -> tuple[str, ...]:
    """Every rule id a declared rule can raise."""
    if isinstance(rule, QuantityValue):
        suffixes = ("value", "unit", "unit-code", "range") + (("decimals",) if rule.one_decimal else ())
        return (rule.rule,) + tuple(f"{rule.prefix}.{s}" for s in suffixes)
    return (rule.rule,)


def _range(variable: str) -> tuple[float, float]:
    spec = VARIABLES_BY_NAME[variable]
    assert spec.minimum is not None and spec.maximum is not None
    return float(spec.minimum), float(spec.maximum)


_PSA_MIN, _PSA_MAX = _range(PSA)
_VOLUME_MIN, _VOLUME_MAX = _range(PROSTATE_VOLUME)
_AGE_MIN, _AGE_MAX = _range(AGE)

_PROSTATE_SITE_LIST: Final = Shape(max=None, repeats=True)  # Procedure.bodySite 0..*
_EFFECTIVE = "effectiveDateTime"


def _age(prefix: str, required: bool) -> QuantityValue:
    return QuantityValue(
        f"{prefix}.performedAge", "performedAge", f"{prefix}.age", AGE_UNITS, _AGE_MIN, _AGE_MAX,
        one_decimal=False, shape=REQUIRED if required else OPTIONAL,
    )


BIOPSY_PROFILE: Final = Profile(
    "biopsy", "PR-Biopsy", "Procedure",
    recognised_by=FixedCoding("biopsy.code", "code", t.BIOPSY, REQUIRED),
    rules=(
        FixedCoding("biopsy.code", "code", t.BIOPSY, REQUIRED),
        PatientReference("biopsy.subject", "subject"),
        InValueSet("biopsy.category", "category", t.VS_BIOPSY_TYPE),
        FixedCoding("biopsy.bodySite", "bodySite", t.PROSTATE_STRUCTURE, _PROSTATE_SITE_LIST),
        OneOf("biopsy.performed", ("performedAge", "performedDateTime", "performedPeriod")),
        _age("biopsy", required=False),
        DateTime("biopsy.performedDateTime", "performedDateTime"),
        Present("biopsy.performedPeriod", "performedPeriod", OPTIONAL),
        DateTime("biopsy.performedPeriod.start", "performedPeriod.start"),
    ),
)

DRE_PROFILE: Final = Profile(
    "dre", "PR-DigitalRectalExamination", "Procedure",
    recognised_by=FixedCoding("dre.code", "code", t.DRE, REQUIRED),
    rules=(
        FixedCoding("dre.code", "code", t.DRE, REQUIRED),
        PatientReference("dre.subject", "subject"),
        FixedCoding("dre.bodySite", "bodySite", t.PROSTATE_STRUCTURE, _PROSTATE_SITE_LIST),
        InValueSet("dre.outcome", "outcome", t.VS_DRE_OUTCOME),
        OneOf("dre.performed", ("performedAge", "performedDateTime", "performedPeriod"), min=0),
        _age("dre", required=False),
        DateTime("dre.performedDateTime", "performedDateTime"),
    ),
)

FAMILY_HISTORY_PROFILE: Final = Profile(
    "fmh", "PR-ProstateCancerFamilyHistory", "FamilyMemberHistory",
    recognised_by=InValueSet("fmh.condition", "condition.code", t.VS_PCA),
    rules=(
        Present("fmh.condition", "condition", Shape(min=1, max=None, repeats=True)),
        InValueSet("fmh.condition.code", "condition.code", t.VS_PCA, Shape(max=None)),
        DateTime("fmh.date", "date"),
    ),
)

PSA_PROFILE: Final = Profile(
    "psa", "PR-ProstateSpecificAntigen", "Observation",
    recognised_by=FixedCoding("psa.code", "code", t.PSA, REQUIRED),
    rules=(
        FixedCoding("psa.code", "code", t.PSA, REQUIRED),
        PatientReference("psa.subject", "subject"),
        QuantityValue("psa.valueQuantity", "valueQuantity", "psa", PSA_UNITS, _PSA_MIN, _PSA_MAX, one_decimal=True),
        DateTime("psa.effective", _EFFECTIVE),
    ),
)

VOLUME_PROFILE: Final = Profile(
    "volume", "PR-ProstateVolume", "Observation",
    recognised_by=FixedCoding("volume.code", "code", t.PROSTATE_VOLUME, REQUIRED),
    rules=(
        FixedCoding("volume.code", "code", t.PROSTATE_VOLUME, REQUIRED),
        PatientReference("volume.subject", "subject"),
        FixedCoding("volume.bodySite", "bodySite", t.PROSTATE_STRUCTURE),
        QuantityValue(
            "volume.valueQuantity", "valueQuantity", "volume", VOLUME_UNITS, _VOLUME_MIN, _VOLUME_MAX, one_decimal=True
        ),
        DateTime("volume.effective", _EFFECTIVE),
    ),
)

PIRADS_PROFILE: Final = Profile(
    "pirads", "PR-PIRADSScore", "Observation",
    recognised_by=FixedCoding("pirads.code", "code", t.MPMRI_PROSTATE, REQUIRED),
    rules=(
        FixedCoding("pirads.code", "code", t.MPMRI_PROSTATE, REQUIRED),
        PatientReference("pirads.subject", "subject"),
        IntegerRange("pirads.value", "valueInteger", 1, 5),
        DateTime("pirads.effective", _EFFECTIVE),
    ),
)

OUTCOME_PROFILE: Final = Profile(
    "outcome", "PR-OutcomeBCN-RC2", "Observation",
    recognised_by=FixedCoding("outcome.code", "code", t.ISUP_GRADE, REQUIRED),
    rules=(
        FixedCoding("outcome.code", "code", t.ISUP_GRADE, REQUIRED),
        PatientReference("outcome.subject", "subject"),
        InValueSet("outcome.value", "valueCodeableConcept", t.VS_GLEASON_GRADE),
        Present("outcome.component", "component", Shape(max=0, repeats=True)),
        DateTime("outcome.effective", _EFFECTIVE),
    ),
)

PATIENT_PROFILE: Final = Profile(
    "patient", "Patient", "Patient",
    rules=(
        InCodes("patient.gender", "gender", t.ADMINISTRATIVE_GENDER, "AdministrativeGender", Shape(kind=Kind.STRING)),
        DateTime("patient.birthDate", "birthDate"),
    ),
)

PROFILES: Final[tuple[Profile, ...]] = (
    BIOPSY_PROFILE,
    FAMILY_HISTORY_PROFILE,
    PSA_PROFILE,
    DRE_PROFILE,
    VOLUME_PROFILE,
    PIRADS_PROFILE,
    OUTCOME_PROFILE,
    PATIENT_PROFILE,
)

#: Rules of the base FHIR R4 resource types FLUTE reads; they apply whatever the profile.
BASE_RULES: Final[Mapping[str, tuple[Rule, ...]]] = {
    "Observation": (
        InCodes("observation.status", "status", t.OBSERVATION_STATUS, "ObservationStatus"),
        Present("observation.code", "code"),
    ),
    "Procedure": (
        InCodes("procedure.status", "status", t.EVENT_STATUS, "EventStatus"),
        Present("procedure.subject", "subject"),
    ),
    "FamilyMemberHistory": (
        InCodes("familymemberhistory.status", "status", t.FAMILY_HISTORY_STATUS, "FamilyHistoryStatus"),
        PatientReference("familymemberhistory.patient", "patient"),
        Present("familymemberhistory.relationship", "relationship"),
    ),
    "Patient": (),
}
