"""From a StudyResult to the TRIPOD-style validation report of `flute.evaluate`.

Sites are the hubs' out-of-fold histograms added over the CV folds; leave-one-hub-out rows are the
held-out hubs' histograms. Everything is computed from those additive summaries.
"""

from __future__ import annotations

from flute.engine.result import StudyResult
from flute.engine.spec import StudySpec
from flute.evaluate.report import NamedSummary, RunDescription, StudyDescription, ValidationReport, build_validation_report


class NoValidation(ValueError):
    """The study ran no cross-validation, so there is nothing to report on."""


def validation_report(result: StudyResult, *, mode: str) -> ValidationReport:
    """`mode` says how the study ran (e.g. 'embedded', 'deployment') for the methods section."""
    sites = result.cv_site_summaries()
    if not sites:
        raise NoValidation(f"study {result.spec.study_id} ran no cross-validation (evaluation.cv_folds = 0); set cv_folds >= 2 to validate")
    spec = result.spec
    model = (
        f"{spec.model.name} on {', '.join(spec.cohort.variables)} (log of {', '.join(spec.preprocessing.log_transform) or 'none'}), "
        f"l2 {spec.model.l2:g}, class weight {spec.model.class_weight}, strategy {spec.strategy.name}; "
        f"{spec.evaluation.cv_folds}-fold CV with folds assigned at each hub (seed {spec.seed})"
    )
    pets, epsilon, delta = pets_statement(spec)
    rounds = result.final_model.rounds if result.of_kind("final") else None
    missing = {count.hub: 100.0 * count.n_incomplete / count.n for count in result.hubs if count.n}
    return build_validation_report(
        StudyDescription(spec.study_id, spec.name, model),
        RunDescription(mode=mode, pets=pets, rounds=rounds, epsilon=epsilon, delta=delta),
        [NamedSummary(hub, summary, missing.get(hub)) for hub, summary in sorted(sites.items())],
        internal_external=[NamedSummary(hub, summary, missing.get(hub)) for hub, summary in sorted(result.loho_summaries().items())],
    )


def pets_statement(spec: StudySpec) -> tuple[tuple[str, ...], float | None, float | None]:
    """Which PETs ran and, for a DP study, the (epsilon, delta) every hub charged - with exactly
    what that guarantee covers, so the report never claims more than was protected."""
    secagg = spec.pets.secure_aggregation
    if secagg is None:
        return (), None, None
    graph = "complete graph" if secagg.neighbours is None else f"SecAgg+ with {secagg.neighbours} neighbours"
    threshold = f"threshold {secagg.threshold}" if secagg.threshold else "threshold = majority of share holders"
    pets = [f"secure aggregation of every additive hub answer (SecAgg, {graph}, {threshold}; the coordinator saw only sums over hubs)"]
    if spec.pets.dp is None:
        return tuple(pets), None, None
    from flute.engine.hub_privacy import study_plan

    plan, dp = study_plan(spec), spec.pets.dp
    pets.append(
        f"record-level differential privacy (unit: one patient's record; {dp.noise} Gaussian noise; {plan.releases.count} "
        f"releases composed over all {spec.evaluation.cv_folds} CV folds and the final model, PLD accounting) covering "
        "training, preprocessing and the census; the evaluation histograms are released under secure aggregation only, not DP"
    )
    return tuple(pets), plan.cost.epsilon, plan.cost.delta
