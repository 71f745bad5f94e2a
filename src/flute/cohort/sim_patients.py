"""Drawing simulated pilot patients: true clinical values, outcome, and how the hospital recorded them.

A patient has two layers. The truth (age, PSA, ..., ISUP grade group) comes from the site's case
mix and the site's true risk model (`flute.cohort.risk_model`). The presentation is the real-world mess a hub has to cope with:
missing measurements, repeated and entered-in-error PSA results, other units, ages given by birth
date, unlabelled patients, and a small share of deliberately invalid resources. `expected_row`
says what a correct extraction must return from the FHIR the simulator writes - the contract the
tests hold the FHIR extraction and the hub's ingest to (NF-PIL-3, F-PIL-27..32).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from enum import Enum
from typing import Final

import numpy as np

from flute.cohort.risk_model import Predictors, linear_predictor, sigmoid, solve_intercept
from flute.cohort.sites import CaseMix, SiteSpec
from flute.cohort.variables import (
    AGE,
    BIOPSY_TYPE,
    DRE,
    FAMILY_HISTORY,
    PIRADS,
    PROSTATE_VOLUME,
    PSA,
    StudyRow,
)

#: The IG's executable inclusion rule (library PcaInclusionCriteria): a final PSA >= 3 ng/mL
#: or a suspicious DRE. The simulator uses it to aim prevalence at the included men.
IG_PSA_INCLUSION_NG_PER_ML: Final[float] = 3.0


class InvalidKind(str, Enum):
    """The deliberately invalid resources, one per affected patient (recorded in the manifest)."""

    PSA_BAD_UNIT = "psa-bad-unit"  # PSA in mmol/L: a unit that cannot be harmonised
    PIRADS_OUT_OF_RANGE = "pirads-out-of-range"  # PI-RADS 7
    UNKNOWN_CODE = "unknown-code"  # DRE outcome coded outside the IG's two outcome codes
    DANGLING_SUBJECT = "dangling-subject"  # prostate volume whose subject Patient does not exist


@dataclass(frozen=True)
class MessRates:
    """Shares of patients affected by each kind of real-world mess.

    `invalid` is per patient; with about 7 resources a patient it makes about 1 % of resources
    invalid.
    """

    volume_missing: float = 0.04
    dre_missing: float = 0.02
    unlabelled: float = 0.015
    earlier_psa: float = 0.15
    entered_in_error_psa: float = 0.02
    invalid: float = 0.07


MESS: Final[MessRates] = MessRates()

#: VS-PCa codes written on positive family histories (SNOMED CT, all in the IG value set).
FAMILY_HISTORY_CONDITIONS: Final[tuple[tuple[str, str], ...]] = (
    ("1259388006", "Primary carcinoma of prostate"),
    ("399068003", "Malignant tumor of prostate"),
    ("254900004", "Carcinoma of prostate"),
    ("399490008", "Adenocarcinoma of prostate"),
)
FAMILY_RELATIONSHIPS: Final[tuple[tuple[str, str], ...]] = (("FTH", "father"), ("BRO", "brother"))

# Log-scale shifts of volume and PSA per PI-RADS point above 3, and log PSA per log volume.
_VOLUME_PER_PIRADS: Final[float] = -0.08
_PSA_PER_PIRADS: Final[float] = 0.12
_PSA_PER_LOG_VOLUME: Final[float] = 0.35
_FIRST_BIOPSY_DAY: Final[date] = date(2017, 1, 1)
_BIOPSY_DAYS: Final[int] = 7 * 365


@dataclass(frozen=True)
class PsaResult:
    """One PSA result as recorded: value in ng/mL (converted to `unit` when written) and date."""

    value_ng_per_ml: float
    when: date


@dataclass(frozen=True)
class Presentation:
    """How one patient's data were recorded at the hospital."""

    psa_unit: str  # UCUM: ng/mL, ug/L or ng/dL
    volume_unit: str  # UCUM: cm3 or mL
    earlier_psa: tuple[PsaResult, ...]
    entered_in_error_psa: PsaResult | None
    volume_recorded: bool
    dre_recorded: bool
    labelled: bool
    dated: bool  # ages come from Patient.birthDate and procedure dates, not performedAge
    family_condition: tuple[str, str]
    family_relationship: tuple[str, str]
    invalid: InvalidKind | None


@dataclass(frozen=True)
class SimulatedPatient:
    """True values (what happened) and their presentation (what the FHIR says)."""

    id: str
    site: str
    age: int
    psa: float
    volume: float
    dre: int
    family_history: int
    repeat_biopsy: int
    pirads: int
    isup: int
    true_risk: float  # P(csPCa) under the site's true model: the benchmark no trained model can beat in expectation
    biopsy_date: date
    mri_date: date
    psa_date: date
    birth_date: date
    presentation: Presentation

    @property
    def cspca(self) -> int:
        return int(self.isup >= 2)

    @property
    def truly_included(self) -> bool:
        return self.psa >= IG_PSA_INCLUSION_NG_PER_ML or self.dre == 1

    def expected_row(self) -> StudyRow:
        """The study row a correct extraction returns from this patient's written FHIR."""
        p = self.presentation
        psa = None if p.invalid is InvalidKind.PSA_BAD_UNIT else self.psa
        dre = self.dre if p.dre_recorded and p.invalid is not InvalidKind.UNKNOWN_CODE else None
        volume = self.volume if p.volume_recorded and p.invalid is not InvalidKind.DANGLING_SUBJECT else None
        pirads = None if p.invalid is InvalidKind.PIRADS_OUT_OF_RANGE else self.pirads
        included = (psa is not None and psa >= IG_PSA_INCLUSION_NG_PER_ML) or dre == 1
        return StudyRow(
            patient=self.id,
            included=included,
            variables={
                AGE: self.age,
                FAMILY_HISTORY: self.family_history,
                BIOPSY_TYPE: 2 * self.repeat_biopsy,
                PSA: psa,
                DRE: dre,
                PROSTATE_VOLUME: volume,
                PIRADS: pirads,
            },
            isup=self.isup if p.labelled else None,
            biopsy_date=self.biopsy_date if p.dated else None,
        )


def _birth_date(biopsy: date, age: int, month: int, day: int) -> date:
    """A birth date on month/day that makes the man exactly `age` on the biopsy day."""
    birthday_still_ahead = (biopsy.month, biopsy.day) < (month, day)
    return date(biopsy.year - age - int(birthday_still_ahead), month, day)


def _same_side_of_threshold(value: float, reference: float) -> float:
    """Keep an earlier PSA on the reference's side of the inclusion threshold, so inclusion does
    not depend on which of a patient's final PSA results an extractor reads."""
    if reference >= IG_PSA_INCLUSION_NG_PER_ML:
        return max(value, IG_PSA_INCLUSION_NG_PER_ML)
    return min(max(value, 0.1), IG_PSA_INCLUSION_NG_PER_ML - 0.1)


def _draw_predictors(mix: CaseMix, n: int, rng: np.random.Generator) -> Predictors:
    """The seven predictors' true values from a site's case mix."""
    pirads = rng.choice(5, size=n, p=np.asarray(mix.pirads_shares)) + 1
    age = np.clip(np.rint(rng.normal(mix.age_mean, mix.age_sd, n)), 45, 88).astype(np.int64)
    # Suspicious MRI goes with smaller glands and higher PSA (PSA density) - the correlation that
    # makes PI-RADS alone as predictive as it is in published cohorts.
    pirads_shift = (pirads - 3).astype(np.float64)
    log_volume_z = rng.standard_normal(n)
    log_volume = np.log(mix.volume_median) + _VOLUME_PER_PIRADS * pirads_shift + mix.volume_log_sd * log_volume_z
    volume = np.clip(np.round(np.exp(log_volume), 1), 10.0, 250.0)
    # PSA rises with gland size (benign enlargement): log PSA correlates with log volume.
    psa_noise_sd = float(np.sqrt(mix.psa_log_sd**2 - (_PSA_PER_LOG_VOLUME * mix.volume_log_sd) ** 2))
    log_psa = (
        np.log(mix.psa_median)
        + _PSA_PER_PIRADS * pirads_shift
        + _PSA_PER_LOG_VOLUME * mix.volume_log_sd * log_volume_z
        + psa_noise_sd * rng.standard_normal(n)
    )
    psa = np.clip(np.round(np.exp(log_psa), 1), 0.3, 150.0)
    dre = (rng.random(n) < mix.dre_suspicious).astype(np.int64)
    family_history = (rng.random(n) < mix.family_history).astype(np.int64)
    repeat_biopsy = (rng.random(n) < mix.repeat_biopsy).astype(np.int64)
    return Predictors(age, psa, volume, dre, family_history, repeat_biopsy, pirads)


def draw_site_patients(site: SiteSpec, n: int, rng: np.random.Generator, mess: MessRates = MESS) -> list[SimulatedPatient]:
    """Draw `n` patients of `site`. Every random column is drawn for all patients in a fixed order,
    so the same generator state always yields the same cohort."""
    habits = site.habits
    x = _draw_predictors(site.case_mix, n, rng)
    age, psa, volume, dre, family_history, repeat_biopsy, pirads = (
        x.age, x.psa, x.volume, x.dre, x.family_history, x.repeat_biopsy, x.pirads
    )
    lp = linear_predictor(x, site.risk)
    included = (psa >= IG_PSA_INCLUSION_NG_PER_ML) | (dre == 1)
    intercept = solve_intercept(lp[included], site.prevalence)
    true_risk = sigmoid(intercept + lp)
    cspca = rng.random(n) < true_risk
    isup = _draw_isup(cspca, pirads, rng)

    biopsy_day = rng.integers(0, _BIOPSY_DAYS, n)
    mri_gap = rng.integers(7, 181, n)
    psa_gap = rng.integers(0, 61, n)
    birth_month = rng.integers(1, 13, n)
    birth_day = rng.integers(1, 29, n)
    dated = rng.random(n) < habits.age_from_birth_date
    unit_draw = rng.random(n)
    volume_ml = rng.random(n) < habits.volume_ml
    volume_recorded = rng.random(n) >= mess.volume_missing
    dre_recorded = rng.random(n) >= mess.dre_missing
    labelled = rng.random(n) >= mess.unlabelled
    earlier_count = np.where(rng.random(n) < mess.earlier_psa, rng.integers(1, 3, n), 0)
    earlier_factor = rng.lognormal(0.0, 0.2, (n, 2))
    earlier_gap = rng.integers(60, 400, (n, 2)).cumsum(axis=1)
    entered_in_error = rng.random(n) < mess.entered_in_error_psa
    eie_gap = rng.integers(1, 7, n)
    family_condition = rng.integers(0, len(FAMILY_HISTORY_CONDITIONS), n)
    family_relationship = rng.integers(0, len(FAMILY_RELATIONSHIPS), n)
    invalid = rng.random(n) < mess.invalid
    invalid_pick = rng.integers(0, 1 << 30, n)

    patients: list[SimulatedPatient] = []
    for i in range(n):
        biopsy = _FIRST_BIOPSY_DAY + timedelta(days=int(biopsy_day[i]))
        mri = biopsy - timedelta(days=int(mri_gap[i]))
        psa_when = mri - timedelta(days=int(psa_gap[i]))
        value = float(psa[i])
        earlier = tuple(
            PsaResult(_same_side_of_threshold(round(value * float(earlier_factor[i, k]), 1), value), psa_when - timedelta(days=int(earlier_gap[i, k])))
            for k in range(int(earlier_count[i]))
        )
        eie = PsaResult(round(value * 10.0, 1), psa_when + timedelta(days=int(eie_gap[i]))) if entered_in_error[i] else None
        single_psa = not earlier and eie is None
        eligible = [
            kind
            for kind, possible in (
                (InvalidKind.PSA_BAD_UNIT, single_psa),
                (InvalidKind.PIRADS_OUT_OF_RANGE, True),
                (InvalidKind.UNKNOWN_CODE, bool(dre_recorded[i])),
                (InvalidKind.DANGLING_SUBJECT, bool(volume_recorded[i])),
            )
            if possible
        ]
        u = float(unit_draw[i])
        psa_unit = "ug/L" if u < habits.psa_ug_per_l else "ng/dL" if u < habits.psa_ug_per_l + habits.psa_ng_per_dl else "ng/mL"
        patients.append(
            SimulatedPatient(
                id=f"{site.slug}-{i + 1:05d}",
                site=site.slug,
                age=int(age[i]),
                psa=value,
                volume=float(volume[i]),
                dre=int(dre[i]),
                family_history=int(family_history[i]),
                repeat_biopsy=int(repeat_biopsy[i]),
                pirads=int(pirads[i]),
                isup=int(isup[i]),
                true_risk=float(true_risk[i]),
                biopsy_date=biopsy,
                mri_date=mri,
                psa_date=psa_when,
                birth_date=_birth_date(biopsy, int(age[i]), int(birth_month[i]), int(birth_day[i])),
                presentation=Presentation(
                    psa_unit=psa_unit,
                    volume_unit="mL" if volume_ml[i] else "cm3",
                    earlier_psa=earlier,
                    entered_in_error_psa=eie,
                    volume_recorded=bool(volume_recorded[i]),
                    dre_recorded=bool(dre_recorded[i]),
                    labelled=bool(labelled[i]),
                    dated=bool(dated[i]),
                    family_condition=FAMILY_HISTORY_CONDITIONS[int(family_condition[i])],
                    family_relationship=FAMILY_RELATIONSHIPS[int(family_relationship[i])],
                    invalid=eligible[int(invalid_pick[i]) % len(eligible)] if invalid[i] else None,
                ),
            )
        )
    return patients


def _draw_isup(cspca: np.ndarray, pirads: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """ISUP grade group consistent with the csPCa outcome: 2..5 when csPCa (higher grades likelier
    with PI-RADS 4-5), else 1 (low-grade cancer, likelier with higher PI-RADS) or 0 (no cancer)."""
    u = rng.random(cspca.size)
    high_pirads = pirads >= 4
    significant_cdf = np.where(
        high_pirads[:, None],
        np.array([0.35, 0.60, 0.77, 1.0])[None, :],
        np.array([0.45, 0.72, 0.85, 1.0])[None, :],
    )
    significant_grade = 2 + (u[:, None] > significant_cdf).sum(axis=1)
    low_grade = (u < 0.25 + 0.08 * pirads).astype(np.int64)
    return np.where(cspca, significant_grade, low_grade).astype(np.int64)
