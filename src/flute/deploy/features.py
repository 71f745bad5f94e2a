"""The manifest's feature schema for the StudyVariables (F-STD-2: SNOMED CT, LOINC, UCUM).

Declares, per variable, where FHIR carries it and with which codes, its UCUM unit and the range a
site may score; all taken from `flute.cohort.variables` and `flute.fhir.terminology`, so the
artifact and the hubs' extraction cannot disagree.
"""

from __future__ import annotations

from typing import Final, Mapping, Sequence

from flute.cohort.variables import (
    AGE,
    BIOPSY_TYPE,
    DRE,
    FAMILY_HISTORY,
    PIRADS,
    PROSTATE_VOLUME,
    PSA,
    VARIABLES_BY_NAME,
)
from flute.deploy.manifest import FeatureCoding, FeatureSpec
from flute.fhir import terminology as t
from flute.fhir.risk_assessment import PROSTATE_CANCER


def _codings(*codings: t.Coding) -> tuple[FeatureCoding, ...]:
    return tuple(FeatureCoding(system=c.system, code=c.code, display=c.display) for c in codings)


_SOURCES: Final[Mapping[str, tuple[str, tuple[FeatureCoding, ...]]]] = {
    AGE: ("Procedure PR-Biopsy performedAge (or Patient.birthDate and the biopsy date)", _codings(t.BIOPSY)),
    FAMILY_HISTORY: (f"FamilyMemberHistory PR-ProstateCancerFamilyHistory, condition.code in {t.VS_PCA.url}", _codings(PROSTATE_CANCER)),
    BIOPSY_TYPE: ("Procedure PR-Biopsy category: 884001 -> 0, 27582007 -> 2", _codings(t.BIOPSY, t.BIOPSY_INITIAL, t.BIOPSY_REPEATED)),
    PSA: ("Observation PR-ProstateSpecificAntigen valueQuantity", _codings(t.PSA)),
    DRE: ("Procedure PR-DigitalRectalExamination outcome: 17621005 -> 0, 131196009 -> 1", _codings(t.DRE, t.DRE_NORMAL, t.DRE_SUSPICIOUS)),
    PROSTATE_VOLUME: ("Observation PR-ProstateVolume valueQuantity", _codings(t.PROSTATE_VOLUME)),
    PIRADS: ("Observation PR-PIRADSScore valueInteger", _codings(t.MPMRI_PROSTATE)),
}


def feature_schema(columns: Sequence[str]) -> tuple[FeatureSpec, ...]:
    """FeatureSpecs for the model's input columns, in column order."""
    features = []
    for name in columns:
        variable = VARIABLES_BY_NAME[name]
        source, codings = _SOURCES[name]
        features.append(
            FeatureSpec(
                name=name,
                description=variable.description,
                unit=variable.unit,
                source=source,
                codings=codings,
                minimum=variable.minimum,
                maximum=variable.maximum,
                allowed_values=tuple(float(code) for code in variable.codes),
            )
        )
    return tuple(features)
