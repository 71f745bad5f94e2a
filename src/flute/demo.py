"""The main job, end to end on the embedded default: simulate the three pilot hospitals as FHIR,
ingest each into its own hub store, choose the model family by federated cross-validation, and
prepare the csPCa study that runs across them.

This module only orchestrates library calls and reports what happened as typed values; the
`flute demo` command prints them and runs the study through the same code path as
`flute study run`, so the demo exercises exactly what a user runs.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flute.cohort.sites import SITES
from flute.cohort.variables import PIRADS, PROSTATE_VOLUME, PSA, VARIABLE_NAMES

if TYPE_CHECKING:
    from flute.engine.result import StudyResult
    from flute.engine.spec import StudySpec

#: Logs of PSA and volume, PI-RADS as categories, one intercept for all hubs: the other
#: candidates' preprocessing (hub intercepts are a logistic regression option).
POOLED_PREPROCESSING: dict[str, object] = {"standardise": True, "impute": "mean", "log_transform": [PSA, PROSTATE_VOLUME], "categories": [PIRADS]}

#: The study the demo runs, with the model family `select_model` chooses: the 7 BCN-RC
#: variables, csPCa outcome, 5-fold CV and leave-one-hospital-out, compared on the same
#: out-of-fold patients with PI-RADS alone and the BCN-style reference (F-PIL-15). As written it
#: is the logistic-regression candidate (federated Newton: converges to the centralised fit).
#: PSA and prostate volume enter as logs (so their difference is log PSA density) and PI-RADS as
#: categories (one indicator per score 2..5): the risk step between PI-RADS 3 and 4 is far larger
#: than between 2 and 3, which one numeric PI-RADS column cannot express. Each hospital gets its
#: own intercept (`preprocessing.hub_intercepts`): the pilot sites differ in csPCa prevalence
#: (33-44 %) and case mix, and on the simulated pilot (seeds 0-9) stratified intercepts are what
#: lets a model trained on 2,240 men beat the published equation on net benefit at 15 % at every
#: seed (a pooled intercept wins at about half of them); a light penalty (l2 0.001) because the
#: same penalty shrinks every weight.
DEMO_SPEC: dict[str, object] = {
    "study_id": "flute-demo-cspca",
    "name": "csPCa risk from the 7 BCN-RC variables across three simulated pilot hospitals",
    "cohort": {"variables": list(VARIABLE_NAMES), "included_only": True, "outcome": "csPCa"},
    "preprocessing": {**POOLED_PREPROCESSING, "hub_intercepts": [site.slug for site in SITES]},
    "model": {"name": "logistic_regression", "l2": 0.001},
    "strategy": {"name": "newton"},
    "seed": 0,
    "federation": {"min_hubs": 3},
    "evaluation": {"cv_folds": 5, "leave_one_hub_out": True, "comparators": ["pirads_only", "bcn_reference"]},
}


#: File in the demo's output directory recording every candidate's score and the choice.
SELECTION_FILE = "model-selection.json"

#: Operating threshold of the demo's comparison (biopsy when the csPCa risk is >= 15 %).
DECISION_THRESHOLD = 0.15
_LOCAL_TRAINING: dict[str, object] = {"rounds": 200, "tolerance": 1e-8, "local_epochs": 5, "learning_rate": 0.5}
#: Trees split an ordinal PI-RADS at any score directly; its indicators only fragment the splits
#: (simulated pilot, seeds 0-2: the forest loses 0.002-0.003 AUROC with indicators at every seed).
_ORDINAL_PIRADS: dict[str, object] = {"standardise": True, "impute": "mean", "log_transform": [PSA, PROSTATE_VOLUME]}


@dataclass(frozen=True)
class CandidateModel:
    """One model family of the zoo with the options the demo trains it with (those of the PI-CAI
    benchmark, `benchmarks/picai_models.py`); `key` names it in tables and JSON keys; `strategy`,
    `training` and `preprocessing` replace DEMO_SPEC's where given."""

    key: str
    model: dict[str, object]
    strategy: dict[str, object] | None = None
    training: dict[str, object] | None = None
    preprocessing: dict[str, object] | None = None

    def spec(self, *, leave_one_hub_out: bool = True, comparators: bool = True) -> StudySpec:
        """DEMO_SPEC with this model (same seed, so the same CV folds for every candidate).
        Model selection needs neither leave-one-hub-out nor the comparators."""
        from flute.engine.spec import StudySpec

        data: dict[str, Any] = {key: value for key, value in DEMO_SPEC.items() if key != "strategy"}
        data["model"] = self.model
        if self.strategy is not None:
            data["strategy"] = self.strategy
        if self.training is not None:
            data["training"] = self.training
        if self.preprocessing is not None:
            data["preprocessing"] = self.preprocessing
        evaluation: dict[str, Any] = dict(DEMO_SPEC["evaluation"])  # type: ignore[call-overload]
        evaluation["leave_one_hub_out"] = leave_one_hub_out and evaluation["leave_one_hub_out"]
        evaluation["comparators"] = evaluation["comparators"] if comparators else []
        data["evaluation"] = evaluation
        return StudySpec.from_mapping(data, source=f"demo candidate {self.key}")


#: The candidates, logistic regression first: another is chosen only if its AUROC is strictly higher.
DEMO_CANDIDATES: tuple[CandidateModel, ...] = (
    CandidateModel("lr", DEMO_SPEC["model"], DEMO_SPEC["strategy"]),  # type: ignore[arg-type]
    CandidateModel("svm", {"name": "linear_svm", "loss": "squared_hinge", "l2": 0.01}, {"name": "fedavg"}, _LOCAL_TRAINING, POOLED_PREPROCESSING),
    CandidateModel("mlp", {"name": "mlp", "hidden_units": 4, "l2": 0.01, "activation": "tanh"}, {"name": "fedavg"}, _LOCAL_TRAINING, POOLED_PREPROCESSING),
    CandidateModel("tree", {"name": "decision_tree", "max_depth": 6, "min_rows_leaf": 30}, preprocessing=_ORDINAL_PIRADS),
    CandidateModel(
        "forest", {"name": "random_forest", "n_trees": 50, "max_depth": 6, "min_rows_leaf": 40, "max_features": 0.75}, preprocessing=_ORDINAL_PIRADS
    ),
    CandidateModel(
        "gbdt", {"name": "gbdt", "n_trees": 60, "max_depth": 2, "learning_rate": 0.1, "min_child_weight": 5.0}, preprocessing=_ORDINAL_PIRADS
    ),
)


@dataclass(frozen=True)
class CandidateScore:
    """A candidate's pooled out-of-fold performance: AUROC and net benefit at 15 %."""

    candidate: CandidateModel
    auroc: float
    net_benefit: float


@dataclass(frozen=True)
class ModelSelection:
    """Every candidate's score, and the chosen one (highest pooled CV AUROC; ties to the simpler)."""

    scores: tuple[CandidateScore, ...]
    best: CandidateModel

    def to_json(self) -> dict[str, object]:
        return {
            "criterion": "pooled out-of-fold AUROC of 5-fold federated cross-validation (ties to the simpler model)",
            "best": self.best.key,
            "best_model": self.best.model["name"],
            "candidates": [
                {"key": s.candidate.key, "model": s.candidate.model["name"], "auroc": s.auroc, "net_benefit_15": s.net_benefit} for s in self.scores
            ],
        }


def pooled_cv_score(result: StudyResult, candidate: CandidateModel) -> CandidateScore:
    """AUROC and net benefit at `DECISION_THRESHOLD` of the pooled out-of-fold risk histograms."""
    from flute.evaluate.metrics import evaluate_summary

    metrics = evaluate_summary(result.cv_pooled_summary(), decision_thresholds=(DECISION_THRESHOLD,), operating_threshold=DECISION_THRESHOLD)
    return CandidateScore(candidate, metrics.auroc.value, metrics.operating_point.counts.net_benefit)


def select_model(
    run_study: Callable[[StudySpec], StudyResult],
    candidates: tuple[CandidateModel, ...] = DEMO_CANDIDATES,
    on_step: Callable[[str], None] = lambda _: None,
) -> ModelSelection:
    """Federated model selection: one cross-validated federated study per candidate (same hubs,
    same folds), compared by pooled out-of-fold AUROC. Only the studies' histograms are used, so
    the selection releases nothing beyond what each study does. The winner's reported CV figures
    are those it was chosen on (mildly optimistic with a handful of candidates)."""
    if not candidates:
        raise ValueError("model selection needs at least one candidate")
    scores = []
    for candidate in candidates:
        on_step(f"cross-validating candidate model {candidate.key} ({candidate.model['name']})")
        scores.append(pooled_cv_score(run_study(candidate.spec(leave_one_hub_out=False, comparators=False)), candidate))
    best = max(scores, key=lambda score: score.auroc)  # the first of equal scores
    return ModelSelection(tuple(scores), best.candidate)


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
    """The demo's prepared hubs."""

    fhir_dir: Path
    hubs: tuple[HubOutcome, ...]


@dataclass(frozen=True)
class DemoStudy:
    """The model selection and the spec file of the study the demo then runs."""

    selection: ModelSelection
    spec_path: Path


def prepare_hubs(out: Path, *, seed: int = 0, on_step: Callable[[str], None] = lambda _: None) -> DemoHubs:
    """Simulate the pilot hospitals under `out/fhir`, create one hub home per hospital under
    `out/hubs/<site>` and import each hospital's FHIR into its own store. `out` must not hold an
    earlier demo's hubs (refused, nothing changed)."""
    from flute.cohort.simulate import simulate_cohort
    from flute.hub.node import init_hub, open_hub
    from flute.hub.summary import summarize

    hubs_dir = out / "hubs"
    if hubs_dir.exists() and any(hubs_dir.iterdir()):
        raise FileExistsError(f"{hubs_dir} already holds hubs from an earlier run; choose another --out or remove it")
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
    return DemoHubs(fhir_dir=fhir_dir, hubs=tuple(outcomes))


def choose_study(out: Path, homes: list[Path], *, on_step: Callable[[str], None] = lambda _: None) -> DemoStudy:
    """Select the model family over the hub homes (`select_model`, embedded engine) and write the
    chosen candidate's full study spec (CV, leave-one-hospital-out, comparators) to `out/study.json`."""
    from flute.engine.apps import client_app, server_app
    from flute.engine.embedded import HubBinding, run_embedded, study_run_config
    from flute.hub.home import load_config

    bindings = [HubBinding(load_config(home).name, home=home) for home in homes]
    selection = select_model(lambda spec: run_embedded(server_app, client_app, bindings, study_run_config(spec)), on_step=on_step)
    spec_path = out / "study.json"
    selection.best.spec().save(spec_path)
    (out / SELECTION_FILE).write_text(json.dumps(selection.to_json(), indent=2) + "\n", encoding="utf-8")
    return DemoStudy(selection, spec_path)


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
