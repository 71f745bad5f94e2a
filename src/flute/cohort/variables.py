"""The StudyVariables logical model of the HL7 Europe FLUTE IG (F-STD-4, F-PIL-27..32).

One row per patient. Every other part of FLUTE (extraction, the hub store, the
federated algorithms, the simulator, synthetic data) speaks in these names, so they
are declared once here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from enum import Enum
from typing import Final, Mapping


class VariableKind(str, Enum):
    """How a variable is coded; decides validation, encoding and synthesis."""

    INTEGER = "integer"
    DECIMAL1 = "decimal1"  # a decimal with at most one decimal place (IG invariant)
    BINARY = "binary"  # 0/1
    CATEGORY = "category"  # a small closed set of integer codes


@dataclass(frozen=True)
class VariableSpec:
    """Declaration of one study variable: its coding, unit and plausible range."""

    name: str
    kind: VariableKind
    unit: str | None
    description: str
    minimum: float | None = None
    maximum: float | None = None
    codes: tuple[int, ...] = ()


AGE = "ageAtBiopsy"
FAMILY_HISTORY = "pcaFamilyHistory"
BIOPSY_TYPE = "typeOfBiopsy"
PSA = "psa"
DRE = "dre"
PROSTATE_VOLUME = "prostateVolume"
PIRADS = "pirads"

STUDY_VARIABLES: Final[tuple[VariableSpec, ...]] = (
    VariableSpec(AGE, VariableKind.INTEGER, "a", "Age at biopsy in years", 18, 110),
    VariableSpec(FAMILY_HISTORY, VariableKind.BINARY, None, "Prostate cancer family history (0 no, 1 yes)", codes=(0, 1)),
    VariableSpec(BIOPSY_TYPE, VariableKind.CATEGORY, None, "Biopsy type (0 initial, 2 repeated)", codes=(0, 2)),
    VariableSpec(PSA, VariableKind.DECIMAL1, "ng/mL", "Prostate-specific antigen", 0.0, 10000.0),
    VariableSpec(DRE, VariableKind.BINARY, None, "Digital rectal examination (0 normal, 1 suspicious)", codes=(0, 1)),
    VariableSpec(PROSTATE_VOLUME, VariableKind.DECIMAL1, "mL", "MRI prostate volume", 1.0, 1000.0),
    VariableSpec(PIRADS, VariableKind.CATEGORY, None, "PI-RADS score 1..5", 1, 5, codes=(1, 2, 3, 4, 5)),
)

VARIABLE_NAMES: Final[tuple[str, ...]] = tuple(v.name for v in STUDY_VARIABLES)
VARIABLES_BY_NAME: Final[Mapping[str, VariableSpec]] = {v.name: v for v in STUDY_VARIABLES}

#: ISUP grade group at or above which cancer is clinically significant (csPCa).
CSPCA_MIN_ISUP: Final[int] = 2


def cspca_from_isup(isup: int | None) -> int | None:
    """csPCa label (F-PIL-9): 1 if ISUP grade group >= 2, 0 if lower, None if unlabelled."""
    if isup is None:
        return None
    return int(isup >= CSPCA_MIN_ISUP)


@dataclass(frozen=True)
class StudyRow:
    """One patient's extracted study variables and outcome.

    `patient` is the source Patient id (before pseudonymisation; the hub store
    replaces it by a keyed pseudonym). Missing variables are None.
    """

    patient: str
    included: bool
    variables: Mapping[str, float | int | None]
    isup: int | None
    biopsy_date: date | None = None
    source_resources: tuple[str, ...] = field(default=())

    @property
    def cspca(self) -> int | None:
        return cspca_from_isup(self.isup)

    def to_json(self) -> dict[str, object]:
        """The `flute fhir extract` line contract."""
        return {
            "patient": self.patient,
            "included": self.included,
            "variables": {name: self.variables.get(name) for name in VARIABLE_NAMES},
            "csPCa": self.cspca,
        }
