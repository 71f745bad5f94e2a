"""From a StudyResult to the TRIPOD-style validation report of `flute.evaluate`.

Sites are the hubs' out-of-fold histograms added over the CV folds; leave-one-hub-out rows are the
held-out hubs' histograms. Everything is computed from those additive summaries.
"""

from __future__ import annotations

from flute.engine.result import StudyResult
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
    pets = () if spec.pets.mode == "none" else (spec.pets.mode,)
    rounds = result.final_model.rounds if result.of_kind("final") else None
    missing = {count.hub: 100.0 * count.n_incomplete / count.n for count in result.hubs if count.n}
    return build_validation_report(
        StudyDescription(spec.study_id, spec.name, model),
        RunDescription(mode=mode, pets=pets, rounds=rounds),
        [NamedSummary(hub, summary, missing.get(hub)) for hub, summary in sorted(sites.items())],
        internal_external=[NamedSummary(hub, summary, missing.get(hub)) for hub, summary in sorted(result.loho_summaries().items())],
    )
