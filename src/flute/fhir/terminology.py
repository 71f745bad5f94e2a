"""Code systems, codes and value sets of the HL7 Europe FLUTE IG (hl7.eu.fhir.flute 0.1.0).

Declared once so the profile rules, the extraction and the emitted resources agree on every
code (F-STD-4, NF-PIL-2). Value sets are closed, explicit lists: there is no terminology
server here, so SNOMED CT descendants of 399068003 that the IG's VS-PCa does not list are NOT
accepted (the IG itself lists its 30 codes; a deployment with a terminology service could
widen `VS_PCA`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Mapping

IG_CANONICAL: Final = "http://hl7.eu/fhir/ig/flute"
#: The IG's own example resources declare profiles under this older base; both are accepted.
IG_LEGACY_CANONICAL: Final = "https://flute.com"

LOINC: Final = "http://loinc.org"
SNOMED: Final = "http://snomed.info/sct"
UCUM: Final = "http://unitsofmeasure.org"


@dataclass(frozen=True)
class Coding:
    """One code of a code system, with the display the IG uses."""

    system: str
    code: str
    display: str

    @property
    def key(self) -> tuple[str, str]:
        return (self.system, self.code)

    def to_fhir(self) -> dict[str, str]:
        return {"system": self.system, "code": self.code, "display": self.display}


@dataclass(frozen=True)
class ValueSet:
    """A closed set of codings (the IG binds these with strength `required`)."""

    name: str
    codings: tuple[Coding, ...]

    @property
    def url(self) -> str:
        return f"{IG_CANONICAL}/ValueSet/{self.name}"

    @property
    def keys(self) -> frozenset[tuple[str, str]]:
        return frozenset(c.key for c in self.codings)

    def describe(self, limit: int = 6) -> str:
        """The allowed codes in words, for error messages (named by URL when long)."""
        if len(self.codings) > limit:
            return f"a code from {self.url} ({len(self.codings)} SNOMED CT codes)"
        return ", ".join(f"{c.code} ({c.display})" for c in self.codings)


def _sct(code: str, display: str) -> Coding:
    return Coding(SNOMED, code, display)


def _loinc(code: str, display: str) -> Coding:
    return Coding(LOINC, code, display)


# Fixed codes of the profiles.
BIOPSY = _sct("86273004", "Biopsy")
DRE = _sct("410006001", "Digital examination of rectum")
PROSTATE_VOLUME = _sct("1297142007", "Volume of prostate")
MPMRI_PROSTATE = _sct("719178004", "Multiparametric magnetic resonance imaging of prostate")
PSA = _loinc("2857-1", "Prostate specific Ag [Mass/volume] in Serum or Plasma")
ISUP_GRADE = _loinc("LL5543-5", "ISUP grade")
PROSTATE_STRUCTURE = _sct("41216001", "Prostatic structure (body structure)")

# VS-BiopsyType and its study coding (typeOfBiopsy: 0 initial, 2 repeated; F-PIL-28).
BIOPSY_INITIAL = _sct("884001", "Initial")
BIOPSY_REPEATED = _sct("27582007", "Repeated")
VS_BIOPSY_TYPE = ValueSet("VS-BiopsyType", (BIOPSY_INITIAL, BIOPSY_REPEATED))
BIOPSY_TYPE_VALUES: Final[Mapping[tuple[str, str], int]] = {
    BIOPSY_INITIAL.key: 0,
    BIOPSY_REPEATED.key: 2,
}

# VS-DREOutcomeCode (dre: 0 normal, 1 suspicious; the IG displays 131196009 as "susceptible").
DRE_NORMAL = _sct("17621005", "Normal")
DRE_SUSPICIOUS = _sct("131196009", "Suspicious")
VS_DRE_OUTCOME = ValueSet("VS-DREOutcomeCode", (DRE_NORMAL, DRE_SUSPICIOUS))
DRE_VALUES: Final[Mapping[tuple[str, str], int]] = {DRE_NORMAL.key: 0, DRE_SUSPICIOUS.key: 1}

# VS-GleasonGrade (LOINC answers) -> ISUP grade group, plus FLUTE's "no cancer" answer.
#: The IG gives no code for a biopsy without cancer (ISUP 0). FLUTE uses SNOMED CT 260415000
#: "Not detected (qualifier value)", the usual answer for "finding not present" in results.
NO_CANCER = _sct("260415000", "Not detected")
GLEASON_ISUP: Final[Mapping[Coding, int]] = {
    _loinc("LA30794-4", "Gleason score 3 + 3 <= 6"): 1,
    _loinc("LA30795-1", "Gleason score 3 + 4 = 7"): 2,
    _loinc("LA30796-9", "Gleason score 4 + 3 = 7"): 3,
    _loinc("LA30797-7", "Gleason score 8"): 4,
    _loinc("LA30798-5", "Gleason score 9-10"): 5,
    NO_CANCER: 0,
}
VS_GLEASON_GRADE = ValueSet("VS-GleasonGrade", tuple(GLEASON_ISUP))
ISUP_VALUES: Final[Mapping[tuple[str, str], int]] = {c.key: g for c, g in GLEASON_ISUP.items()}

# VS-PCa: prostate malignancy, all 30 SNOMED CT codes the IG lists.
VS_PCA = ValueSet(
    "VS-PCa",
    tuple(
        _sct(code, display)
        for code, display in (
            ("1098981000119101", "Recurrent malignant neoplasm of prostate"),
            ("1264500002", "Metastatic infiltrating duct carcinoma to prostate"),
            ("1259710009", "Primary small cell neuroendocrine carcinoma of prostate"),
            ("1259674002", "Primary endometrioid carcinoma of prostate"),
            ("1259672003", "Primary adenocarcinoma of prostate"),
            ("1259669005", "Primary infiltrating duct carcinoma of prostate"),
            ("1259666003", "Primary acinar cell cystadenocarcinoma of prostate"),
            ("1259388006", "Primary carcinoma of prostate"),
            ("1251485006", "Metastatic adenocarcinoma to prostate"),
            ("1240359008", "Metastatic small cell neuroendocrine carcinoma to prostate"),
            ("1240353009", "Metastatic squamous cell carcinoma to prostate"),
            ("1237422007", "Metastatic carcinoma to prostate"),
            ("1208457007", "Small cell neuroendocrine carcinoma of prostate"),
            ("823017009", "Infiltrating duct carcinoma of prostate"),
            ("822970008", "Acinar cell cystadenocarcinoma of prostate"),
            ("722103009", "Hormone sensitive prostate cancer"),
            ("715412008", "Familial prostate cancer"),
            ("449318001", "Non-Hodgkin's lymphoma of prostate"),
            ("448217003", "Follicular non-Hodgkin's lymphoma of prostate"),
            ("448213004", "Diffuse non-Hodgkin's lymphoma of prostate"),
            ("427492003", "Hormone refractory prostate cancer"),
            ("399590005", "Squamous cell carcinoma of prostate"),
            ("399490008", "Adenocarcinoma of prostate"),
            ("399068003", "Malignant tumor of prostate"),
            ("369485004", "Malignant tumor involving prostate by direct extension from bladder"),
            ("314969001", "Local recurrence of malignant tumour of prostate"),
            ("278060005", "Endometrioid carcinoma of prostate"),
            ("254900004", "Carcinoma of prostate"),
            ("94503003", "Metastatic malignant neoplasm to prostate"),
            ("93974005", "Primary malignant neoplasm of prostate"),
        )
    ),
)

# Status value sets of the base resources (FHIR R4 required bindings).
OBSERVATION_STATUS: Final = frozenset(
    {"registered", "preliminary", "final", "amended", "corrected", "cancelled", "entered-in-error", "unknown"}
)
EVENT_STATUS: Final = frozenset(
    {"preparation", "in-progress", "not-done", "on-hold", "stopped", "completed", "entered-in-error", "unknown"}
)
FAMILY_HISTORY_STATUS: Final = frozenset({"partial", "completed", "entered-in-error", "health-unknown"})
ADMINISTRATIVE_GENDER: Final = frozenset({"male", "female", "other", "unknown"})

#: Observation statuses that carry a final result: FHIR defines `amended` and `corrected` as
#: revisions made after `final`, so they count as final results too.
FINAL_RESULT_STATUS: Final = frozenset({"final", "amended", "corrected"})
