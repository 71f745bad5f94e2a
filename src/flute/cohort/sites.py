"""The three pilot hospitals as simulation specs (pilot study: Vall d'Hebron, IRST, CHU Liège).

No site-level distributions are published (clinical-anchors.md), so each site's case mix is
anchored on the Catalan development cohort (Sci Rep 2025, Table 2: suspicious DRE 27.8 %,
family history 7.1 %, repeat biopsy 30.2 %, PI-RADS 1..5 shares 11.6/3.6/25.1/39.8/19.9 %)
and deliberately shifted per site, with prevalences inside the published 30-45 % range, so the
federated algorithms face sites that are not identically distributed - as real hospitals are.

Each site also has its own true risk model (`flute.cohort.risk_model`, where the evidence for
every deviation from the published odds ratios is given): Vall d'Hebron, a centre of the
development cohort, reads PI-RADS as that cohort did (published adjusted odds ratios, DRE OR
2.6); IRST reads it like the 70-study meta-analysis; CHU Liège like the PI-CAI centres; DRE is
less informative at the two external sites. All three share the PSA-density effect.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from flute.cohort.risk_model import PUBLISHED_PIRADS_ODDS, SiteRiskModel, pirads_odds_from_rates


@dataclass(frozen=True)
class CaseMix:
    """Marginal distributions of the seven predictors at one site.

    Ages are normal (years), PSA and prostate volume log-normal (given by median and the
    standard deviation of the natural log), binary predictors by their share of 1s.
    """

    age_mean: float
    age_sd: float
    psa_median: float
    psa_log_sd: float
    volume_median: float
    volume_log_sd: float
    dre_suspicious: float
    family_history: float
    repeat_biopsy: float
    pirads_shares: tuple[float, float, float, float, float]

    def __post_init__(self) -> None:
        if abs(sum(self.pirads_shares) - 1.0) > 1e-9:
            raise ValueError(f"CaseMix: PI-RADS shares {self.pirads_shares} must sum to 1")


@dataclass(frozen=True)
class ReportingHabits:
    """How a site's systems write values: the unit mix the hub must harmonise (NF-PIL-1)."""

    psa_ug_per_l: float  # share of PSA results in ug/L (same number as ng/mL)
    psa_ng_per_dl: float  # share in ng/dL (100 x the ng/mL number)
    volume_ml: float  # share of prostate volumes in mL rather than the IG's cm3
    age_from_birth_date: float  # share of biopsies dated (Patient.birthDate) instead of performedAge


@dataclass(frozen=True)
class SiteSpec:
    """One pilot hospital: identity, cohort size, csPCa prevalence among included men, case mix,
    how its systems record values, and the true risk model its outcomes follow."""

    slug: str
    name: str
    city: str
    country: str
    n: int
    prevalence: float
    case_mix: CaseMix
    habits: ReportingHabits
    risk: SiteRiskModel


SITES: Final[tuple[SiteSpec, ...]] = (
    SiteSpec(
        slug="vhebron",
        name="Vall d'Hebron University Hospital",
        city="Barcelona",
        country="ES",
        n=1963,
        prevalence=0.41,
        case_mix=CaseMix(
            age_mean=67.0, age_sd=7.5, psa_median=6.8, psa_log_sd=0.60, volume_median=55.0,
            volume_log_sd=0.40, dre_suspicious=0.278, family_history=0.071, repeat_biopsy=0.302,
            pirads_shares=(0.116, 0.036, 0.251, 0.398, 0.199),
        ),
        habits=ReportingHabits(psa_ug_per_l=0.02, psa_ng_per_dl=0.0, volume_ml=0.10, age_from_birth_date=0.15),
        risk=SiteRiskModel(
            source="development-cohort centre: published adjusted PI-RADS and DRE odds ratios (Sci Rep 2025)",
            pirads_vs_1=PUBLISHED_PIRADS_ODDS,
            suspicious_dre=2.599,
        ),
    ),
    SiteSpec(
        slug="irst",
        name="IRST Dino Amadori",
        city="Meldola",
        country="IT",
        n=400,
        prevalence=0.33,
        case_mix=CaseMix(
            age_mean=69.0, age_sd=7.0, psa_median=7.6, psa_log_sd=0.65, volume_median=50.0,
            volume_log_sd=0.38, dre_suspicious=0.32, family_history=0.05, repeat_biopsy=0.22,
            pirads_shares=(0.08, 0.06, 0.34, 0.34, 0.18),
        ),
        habits=ReportingHabits(psa_ug_per_l=0.25, psa_ng_per_dl=0.0, volume_ml=0.30, age_from_birth_date=0.40),
        risk=SiteRiskModel(
            source="PI-RADS read like the 2023 meta-analysis (csPCa 6/5/19/54/84 %); DRE OR 1.8 assumed",
            pirads_vs_1=pirads_odds_from_rates((0.06, 0.05, 0.19, 0.54, 0.84)),
            suspicious_dre=1.8,
        ),
    ),
    SiteSpec(
        slug="chu-liege",
        name="CHU de Liège",
        city="Liège",
        country="BE",
        n=700,
        prevalence=0.44,
        case_mix=CaseMix(
            age_mean=65.0, age_sd=8.0, psa_median=6.2, psa_log_sd=0.55, volume_median=58.0,
            volume_log_sd=0.42, dre_suspicious=0.24, family_history=0.09, repeat_biopsy=0.35,
            pirads_shares=(0.06, 0.03, 0.21, 0.43, 0.27),
        ),
        habits=ReportingHabits(psa_ug_per_l=0.05, psa_ng_per_dl=0.03, volume_ml=0.60, age_from_birth_date=0.25),
        risk=SiteRiskModel(
            source="PI-RADS read like the PI-CAI centres (csPCa 0.7/1.5/12.6/41.5/66.1 %); DRE OR 1.6 assumed",
            pirads_vs_1=pirads_odds_from_rates((0.007, 0.015, 0.126, 0.415, 0.661)),
            suspicious_dre=1.6,
        ),
    ),
)

SITES_BY_SLUG: Final[dict[str, SiteSpec]] = {site.slug: site for site in SITES}
