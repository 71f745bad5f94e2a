"""The main job, end to end on the embedded default: simulate the three pilot hospitals as FHIR,
ingest each into its own hub store, and prepare the csPCa study that runs across them.

This module only orchestrates library calls and reports what happened as typed values; the
`flute demo` command prints them and runs the study through the same code path as
`flute study run`, so the demo exercises exactly what a user runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from flute.cohort.variables import PROSTATE_VOLUME, PSA, VARIABLE_NAMES

#: The study the demo runs: the 7 BCN-RC variables, csPCa outcome, federated logistic regression
#: (federated Newton: converges to the centralised fit), 5-fold CV and leave-one-hospital-out,
#: compared on the same out-of-fold patients with PI-RADS alone and the BCN-style reference (F-PIL-15).
DEMO_SPEC: dict[str, object] = {
    "study_id": "flute-demo-cspca",
    "name": "csPCa risk from the 7 BCN-RC variables across three simulated pilot hospitals",
    "cohort": {"variables": list(VARIABLE_NAMES), "included_only": True, "outcome": "csPCa"},
    "preprocessing": {"standardise": True, "impute": "mean", "log_transform": [PSA, PROSTATE_VOLUME]},
    "model": {"name": "logistic_regression", "l2": 0.01},
    "strategy": {"name": "newton"},
    "seed": 0,
    "federation": {"min_hubs": 3},
    "evaluation": {"cv_folds": 5, "leave_one_hub_out": True, "comparators": ["pirads_only", "bcn_reference"]},
}


@dataclass(frozen=True)
class HubOutcome:
    """One simulated hospital after ingestion: what arrived and what its store now holds."""

    site: str  # the hospital's slug, as the validation report names it
    home: Path
    read: int
    stored: int
    quarantined: int
    quarantined_by_rule: dict[str, int]
    patients: int
    included: int
    labelled: int
    cspca_prevalence: float | None


@dataclass(frozen=True)
class DemoHubs:
    """The demo's prepared hubs and the study spec file written next to them."""

    fhir_dir: Path
    spec_path: Path
    hubs: tuple[HubOutcome, ...]


def prepare_hubs(out: Path, *, seed: int = 0, on_step: Callable[[str], None] = lambda _: None) -> DemoHubs:
    """Simulate the pilot hospitals under `out/fhir`, create one hub home per hospital under
    `out/hubs/<site>`, import each hospital's FHIR into its own store, and write the study spec
    to `out/study.json`. `out` must not hold an earlier demo's hubs (refused, nothing changed)."""
    from flute.cohort.simulate import simulate_cohort
    from flute.engine.spec import StudySpec
    from flute.hub.node import init_hub, open_hub
    from flute.hub.summary import summarize

    hubs_dir = out / "hubs"
    if hubs_dir.exists() and any(hubs_dir.iterdir()):
        raise FileExistsError(f"{hubs_dir} already holds hubs from an earlier run; choose another --out or remove it")
    spec = StudySpec.from_mapping(DEMO_SPEC, source="demo spec")
    fhir_dir = out / "fhir"
    on_step("simulating three pilot hospitals as FHIR")
    manifest = simulate_cohort(fhir_dir, seed=seed)
    outcomes = []
    for site in manifest.sites:
        on_step(f"ingesting {site.name} into its hub store")
        home = hubs_dir / site.slug
        init_hub(home, site.slug)
        with open_hub(home) as hub:
            report = hub.import_paths([fhir_dir / site.directory])
            summary = summarize(hub.store)
        outcomes.append(
            HubOutcome(
                site=site.slug, home=home, read=report.read, stored=report.stored, quarantined=report.quarantined,
                quarantined_by_rule=dict(report.quarantined_by_rule), patients=summary.patients, included=summary.included,
                labelled=summary.labelled, cspca_prevalence=summary.cspca_prevalence,
            )
        )
    spec_path = out / "study.json"
    spec.save(spec_path)
    return DemoHubs(fhir_dir=fhir_dir, spec_path=spec_path, hubs=tuple(outcomes))


@dataclass(frozen=True)
class DemoModel:
    """The packaged best model of the demo study and the publisher key that signed it."""

    artifact: Path
    public_key: Path


def package_demo_model(out: Path) -> DemoModel:
    """Sign and package the demo study's final model as `out/model` (F-PIL-24), with a fresh
    publisher key pair in `out/publisher` - the artifact a validation site verifies and scores with."""
    from flute.deploy.keys import generate_key_pair, load_signing_key
    from flute.deploy.study import package_study_result
    from flute.engine.apps import RESULT_FILE
    from flute.engine.flower import record_from_bytes
    from flute.engine.result import StudyResult

    study = StudyResult.from_record(record_from_bytes((out / RESULT_FILE).read_bytes()))
    keys = generate_key_pair(out / "publisher")
    artifact = package_study_result(study, study.spec, out / "model", load_signing_key(keys.private_key))
    return DemoModel(artifact=artifact, public_key=keys.public_key)
