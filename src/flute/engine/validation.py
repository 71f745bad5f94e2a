"""From a StudyResult to the TRIPOD-style validation report of `flute.evaluate`.

Sites are the hubs' out-of-fold histograms added over the CV folds; leave-one-hub-out rows are the
held-out hubs' histograms; comparators (`evaluation.comparators`) are their out-of-fold histograms
over the same folds and hubs. Everything is computed from those additive summaries.
"""

from __future__ import annotations

from flute.engine.comparators import LABELS
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
        f"{spec.model.name} on {', '.join(spec.cohort.variables)} (log of {', '.join(spec.preprocessing.log_transform) or 'none'}; "
        f"categories of {', '.join(spec.preprocessing.categories) or 'none'}; "
        f"{'one intercept per hub' if spec.preprocessing.hub_intercepts else 'one intercept for all hubs'}), "
        f"{_options(spec)}, strategy {spec.strategy.name}; "
        f"{spec.evaluation.cv_folds}-fold CV with folds assigned at each hub (seed {spec.seed})"
    )
    comparators, left_out = _comparators(result)
    if left_out:
        model += "; " + "; ".join(left_out)
    pets, epsilon, delta = pets_statement(spec)
    rounds = result.final_model.rounds if result.of_kind("final") else None
    missing = {count.hub: 100.0 * count.n_incomplete / count.n for count in result.hubs if count.n}
    return build_validation_report(
        StudyDescription(spec.study_id, spec.name, model),
        RunDescription(mode=mode, pets=pets, rounds=rounds, epsilon=epsilon, delta=delta),
        [NamedSummary(hub, summary, missing.get(hub)) for hub, summary in sorted(sites.items())],
        internal_external=[NamedSummary(hub, summary, missing.get(hub)) for hub, summary in sorted(result.loho_summaries().items())],
        comparators=comparators,
    )


def _options(spec: StudySpec) -> str:
    """The model's options as written in the spec (every registry model has its own)."""
    options = spec.model.model_dump(exclude={"name"})
    return ", ".join(f"{name.replace('_', ' ')} {value:g}" if isinstance(value, float) else f"{name.replace('_', ' ')} {value}" for name, value in options.items())


def _comparators(result: StudyResult) -> tuple[list[NamedSummary], list[str]]:
    """The comparators scored on exactly the model's out-of-fold patients, and a statement for
    each one that is not (a hub dropped out between the model's and the comparator's folds)."""
    pooled, summaries = result.cv_pooled_summary(), result.comparator_summaries()
    kept, left_out = [], []
    for name in result.spec.evaluation.comparators:
        summary = summaries.get(name)
        if summary is not None and (summary.n, summary.n_events) == (pooled.n, pooled.n_events):
            kept.append(NamedSummary(LABELS[name], summary))
        else:
            covered = "no patients" if summary is None else f"{summary.n} patients"
            left_out.append(f"comparator {LABELS[name]} left out of the report: scored on {covered}, the model on {pooled.n}")
    return kept, left_out


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
