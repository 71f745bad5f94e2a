"""The pilot cohort simulator: realistic FHIR data for the three pilot hospitals (`flute simulate`).

Real pilot data never leave the hospitals (F-PIL-22), so development, tests, demos and benchmarks
run on simulated sites that behave like them: published marginals and odds ratios
(clinical-anchors.md), site-specific prevalence and case mix, and the mess real exports carry
(see sim_patients). The output is what a hospital would push to its hub - one directory per
site - plus DIR/manifest.json, which states what a correct ingest must find: counts per site,
expected prevalence, and every deliberately invalid resource by kind.

Same seed, same bytes: every random draw comes from a generator seeded by (seed, site index).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import orjson

from flute.cohort.sim_fhir import invalid_resource_key, patient_resources
from flute.cohort.sim_patients import InvalidKind, SimulatedPatient, draw_site_patients
from flute.cohort.sim_writers import OutputFormat, open_site_writer
from flute.cohort.sites import SITES, SiteSpec

MANIFEST_NAME = "manifest.json"


@dataclass(frozen=True)
class SimulatedSite:
    spec: SiteSpec
    patients: tuple[SimulatedPatient, ...]


@dataclass(frozen=True)
class InvalidResource:
    """One deliberately invalid resource: the validation must flag exactly these."""

    site: str
    patient: str
    kind: InvalidKind
    resource: str  # Type/id

    def to_json(self) -> dict[str, str]:
        return {"site": self.site, "patient": self.patient, "kind": self.kind.value, "resource": self.resource}


@dataclass(frozen=True)
class SiteSummary:
    """What one site's directory holds, as a correct extraction will count it."""

    slug: str
    name: str
    country: str
    directory: str
    patients: int
    included: int
    labelled_included: int
    cspca_included: int
    expected_prevalence: float
    resources: dict[str, int]
    invalid_resources: dict[str, int]

    @property
    def realised_prevalence(self) -> float:
        """csPCa share among included, labelled patients."""
        return self.cspca_included / self.labelled_included if self.labelled_included else float("nan")

    def to_json(self) -> dict[str, Any]:
        return {
            "slug": self.slug,
            "name": self.name,
            "country": self.country,
            "directory": self.directory,
            "patients": self.patients,
            "included": self.included,
            "labelled_included": self.labelled_included,
            "cspca_included": self.cspca_included,
            "expected_prevalence": self.expected_prevalence,
            "realised_prevalence": round(self.realised_prevalence, 4),
            "resources": self.resources,
            "invalid_resources": self.invalid_resources,
        }


@dataclass(frozen=True)
class SimulationManifest:
    seed: int
    scale: float
    format: OutputFormat
    sites: tuple[SiteSummary, ...]
    invalid: tuple[InvalidResource, ...]

    @property
    def patients(self) -> int:
        return sum(site.patients for site in self.sites)

    @property
    def invalid_by_kind(self) -> dict[str, int]:
        counts = Counter(item.kind.value for item in self.invalid)
        return {kind.value: counts[kind.value] for kind in InvalidKind}

    def site(self, slug: str) -> SiteSummary:
        for summary in self.sites:
            if summary.slug == slug:
                return summary
        raise KeyError(f"no site {slug!r} in this simulation; sites: {', '.join(s.slug for s in self.sites)}")

    def to_json(self) -> dict[str, Any]:
        return {
            "generator": "flute.cohort.simulate",
            "seed": self.seed,
            "scale": self.scale,
            "format": self.format.value,
            "patients": self.patients,
            "sites": [site.to_json() for site in self.sites],
            "invalid_resources_by_kind": self.invalid_by_kind,
            "invalid_resources": [item.to_json() for item in self.invalid],
        }


def simulate_sites(seed: int = 0, scale: float = 1.0, sites: Sequence[SiteSpec] = SITES) -> tuple[SimulatedSite, ...]:
    """Draw every site's patients (no I/O). `scale` multiplies each site's patient count."""
    if seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed}")
    if scale <= 0:
        raise ValueError(f"scale must be positive, got {scale}")
    return tuple(
        SimulatedSite(site, tuple(draw_site_patients(site, max(1, round(site.n * scale)), np.random.default_rng([seed, index]))))
        for index, site in enumerate(sites)
    )


def simulate_cohort(out: Path, seed: int = 0, fmt: str = "bundles", scale: float = 1.0) -> SimulationManifest:
    """Write every site's FHIR under `out/<site slug>/` and `out/manifest.json`.

    `out` must not exist or be empty: writing over an earlier simulation would mix two cohorts.
    """
    output_format = _parse_format(fmt)
    _require_empty(out)
    summaries: list[SiteSummary] = []
    invalid: list[InvalidResource] = []
    for site in simulate_sites(seed, scale):
        resource_counts: Counter[str] = Counter()
        with open_site_writer(output_format, out / site.spec.slug) as writer:
            for patient in site.patients:
                resources = patient_resources(patient)
                resource_counts.update(resource["resourceType"] for resource in resources)
                writer.write_patient(patient.id, resources)
                kind = patient.presentation.invalid
                if kind is not None:
                    invalid.append(InvalidResource(site.spec.slug, patient.id, kind, invalid_resource_key(patient, kind)))
        summaries.append(_summarise(site, dict(sorted(resource_counts.items())), invalid))
    manifest = SimulationManifest(seed, scale, output_format, tuple(summaries), tuple(invalid))
    (out / MANIFEST_NAME).write_bytes(orjson.dumps(manifest.to_json(), option=orjson.OPT_INDENT_2))
    return manifest


def _summarise(site: SimulatedSite, resources: dict[str, int], invalid: Sequence[InvalidResource]) -> SiteSummary:
    rows = [patient.expected_row() for patient in site.patients]
    included = [row for row in rows if row.included]
    labelled = [row for row in included if row.cspca is not None]
    site_invalid = Counter(item.kind.value for item in invalid if item.site == site.spec.slug)
    return SiteSummary(
        slug=site.spec.slug,
        name=site.spec.name,
        country=site.spec.country,
        directory=site.spec.slug,
        patients=len(rows),
        included=len(included),
        labelled_included=len(labelled),
        cspca_included=sum(row.cspca or 0 for row in labelled),
        expected_prevalence=site.spec.prevalence,
        resources=resources,
        invalid_resources={kind.value: site_invalid[kind.value] for kind in InvalidKind},
    )


def _parse_format(fmt: str) -> OutputFormat:
    try:
        return OutputFormat(fmt)
    except ValueError:
        choices = ", ".join(f.value for f in OutputFormat)
        raise ValueError(f"unknown output format {fmt!r}: choose one of {choices}") from None


def _require_empty(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(
            f"{out} already exists and is not an empty directory; the simulator writes a fresh cohort "
            "only - pick a new directory or remove this one"
        )
    out.mkdir(parents=True, exist_ok=True)
