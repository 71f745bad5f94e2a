"""Simulated pilot cohort: the federated model zoo vs the BCN-style reference and PI-RADS alone (F-PIL-15).

The three simulated pilot hospitals (`flute.cohort`, seed 0, 1x: 2,890 included men; each site's
outcomes follow its own evidence-anchored true model, `flute.cohort.risk_model`) as three
in-memory hubs; side by side in one run, on the SAME 5-fold CV folds:
- every candidate model of the demo (`flute.demo.DEMO_CANDIDATES`: logistic regression, linear
  SVM, MLP, decision tree, random forest, gradient-boosted trees), federated through the embedded
  engine; the best by pooled out-of-fold AUROC is "best federated" (the demo's model selection);
- the comparators of the best model's study (`evaluation.comparators`): the BCN-style reference
  (published odds ratios, intercept recalibrated per fold) and PI-RADS alone;
- for context, the demo's logistic regression with ONE intercept for all hospitals instead of
  one per hospital (`preprocessing.hub_intercepts`); the reference with its intercept
  recalibrated at each hospital on that hospital's training rows (what hub intercepts give the
  model, given to the reference; computed here on the pooled rows, same folds); and the true
  risks of the data-generating models (`flute.cohort.risk_model`) on the same men: no trained
  model can beat those in expectation, and on net benefit at 15 % the reference is close to
  them, so the margin any model can show there is small (about 0.001-0.005, i.e. 3-14 of ~2,800
  men).
Figures: pooled out-of-fold AUROC and net benefit at a 15 % risk threshold. The ratios compare
the best federated model with the reference. `--seeds 0,1,2` repeats on other simulated cohorts
and ends with how many seeds the best federated model beat the reference on both figures.

Usage: .venv/bin/python benchmarks/simulated_pilot.py [--json PATH] [--seeds 0]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
os.environ.setdefault("FLWR_DISABLE_UPDATE_CHECK", "1")


def compare(seed: int) -> dict[str, float | str]:
    import numpy as np

    from flute.cohort.sim_tables import simulated_sites_with_true_risks
    from flute.demo import DECISION_THRESHOLD, DEMO_CANDIDATES, POOLED_PREPROCESSING, CandidateModel, pooled_cv_score, select_model
    from flute.engine.apps import client_app, server_app
    from flute.engine.comparators import LABELS
    from flute.engine.embedded import HubBinding, run_embedded, study_run_config
    from flute.engine.sources import InMemorySource
    from flute.engine.validation import validation_report
    from flute.evaluate.metrics import evaluate_summary
    from flute.evaluate.summary import summarise_scores

    sites = simulated_sites_with_true_risks(seed)
    tables = {name: table for name, (table, _) in sites.items()}
    hubs = [HubBinding(name, source=InMemorySource(table)) for name, table in tables.items()]

    def run_study(spec):  # type: ignore[no-untyped-def]
        return run_embedded(server_app, client_app, hubs, study_run_config(spec))

    selection = select_model(run_study, on_step=lambda step: print(f"  {step}", flush=True))
    result = run_study(selection.best.spec(leave_one_hub_out=False))
    report = validation_report(result, mode="embedded")
    figures: dict[str, float | str] = {"seed": seed, "patients": sum(t.n for t in tables.values()), "best_federated": selection.best.key}
    for score in selection.scores:
        figures[f"auroc_federated_{score.candidate.key}"] = score.auroc
        figures[f"net_benefit_federated_{score.candidate.key}"] = score.net_benefit
    best = pooled_cv_score(result, selection.best)
    figures["auroc_best_federated"], figures["net_benefit_best_federated"] = best.auroc, best.net_benefit
    for name, label in LABELS.items():
        metrics = next(c.metrics for c in report.comparators if c.name == label)
        figures[f"auroc_{name}"] = metrics.auroc.value
        figures[f"net_benefit_{name}"] = metrics.operating_point.counts.net_benefit
    lr = DEMO_CANDIDATES[0]
    one_intercept = CandidateModel("lr_one_intercept", lr.model, lr.strategy, preprocessing=POOLED_PREPROCESSING)
    pooled = pooled_cv_score(run_study(one_intercept.spec(leave_one_hub_out=False, comparators=False)), one_intercept)
    figures["auroc_federated_lr_one_intercept"], figures["net_benefit_federated_lr_one_intercept"] = pooled.auroc, pooled.net_benefit
    labels = np.concatenate([table.labels for table, _ in sites.values()])

    def pooled_metrics(risks: np.ndarray) -> tuple[float, float]:
        metrics = evaluate_summary(
            summarise_scores(labels, risks, result.spec.score_grid()), decision_thresholds=(DECISION_THRESHOLD,), operating_threshold=DECISION_THRESHOLD
        )
        return metrics.auroc.value, metrics.operating_point.counts.net_benefit

    site_recalibrated = np.concatenate([reference_recalibrated_at_site(table, result.spec.evaluation.cv_folds, result.spec.seed) for table in tables.values()])
    figures["auroc_reference_site_recalibrated"], figures["net_benefit_reference_site_recalibrated"] = pooled_metrics(site_recalibrated)
    figures["auroc_true_risk"], figures["net_benefit_true_risk"] = pooled_metrics(np.concatenate([risks for _, risks in sites.values()]))
    figures["auroc_ratio_best_vs_reference"] = best.auroc / float(figures["auroc_bcn_reference"])
    figures["net_benefit_ratio_best_vs_reference"] = best.net_benefit / float(figures["net_benefit_bcn_reference"])
    return figures


def reference_recalibrated_at_site(table, folds: int, seed: int):  # type: ignore[no-untyped-def]
    """Out-of-fold risks of the BCN-style reference at one hospital, its intercept fitted on that
    hospital's training rows of each fold (the engine's folds: `flute.learn.folds`)."""
    import numpy as np
    from scipy.optimize import brentq

    from flute.learn.folds import stratified_folds
    from flute.learn.reference_models import reference_linear_predictor

    logit = reference_linear_predictor(table.features, table.columns)
    assignment = stratified_folds(table.labels, folds, seed)
    risks = np.empty(table.n)
    for fold in range(folds):
        train, held_out = assignment != fold, assignment == fold
        events = table.labels[train].sum()
        intercept = brentq(lambda b: float((1.0 / (1.0 + np.exp(-(b + logit[train])))).sum() - events), -50.0, 50.0)
        risks[held_out] = 1.0 / (1.0 + np.exp(-(intercept + logit[held_out])))
    return risks


def print_table(figures: dict[str, float | str], keys: list[str]) -> None:
    print(f"\nseed {figures['seed']}: {figures['patients']} included labelled men, 5-fold CV (same folds for every row)")
    print(f"{'predictor':34s} {'AUROC':>8s} {'NB at 15 %':>11s}")
    for key in keys:
        print(f"{'federated ' + key:34s} {figures[f'auroc_federated_{key}']:8.4f} {figures[f'net_benefit_federated_{key}']:11.4f}")
    print(f"{'best federated (' + str(figures['best_federated']) + ')':34s} {figures['auroc_best_federated']:8.4f} {figures['net_benefit_best_federated']:11.4f}")
    print(f"{'BCN-style reference':34s} {figures['auroc_bcn_reference']:8.4f} {figures['net_benefit_bcn_reference']:11.4f}")
    print(f"{'PI-RADS alone':34s} {figures['auroc_pirads_only']:8.4f} {figures['net_benefit_pirads_only']:11.4f}")
    print(f"{'reference, recalibrated per site':34s} {figures['auroc_reference_site_recalibrated']:8.4f} {figures['net_benefit_reference_site_recalibrated']:11.4f}")
    print(f"{'lr, one intercept for all hubs':34s} {figures['auroc_federated_lr_one_intercept']:8.4f} {figures['net_benefit_federated_lr_one_intercept']:11.4f}")
    print(f"{'true risks (data-generating model)':34s} {figures['auroc_true_risk']:8.4f} {figures['net_benefit_true_risk']:11.4f}")
    print(f"{'best / reference (ratio)':34s} {figures['auroc_ratio_best_vs_reference']:8.4f} {figures['net_benefit_ratio_best_vs_reference']:11.4f}")


def main() -> None:
    from flute.demo import DEMO_CANDIDATES

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="write the first seed's figures (flat JSON) here")
    parser.add_argument("--seeds", default="0", help="comma-separated simulator seeds (default 0)")
    args = parser.parse_args()
    keys = [candidate.key for candidate in DEMO_CANDIDATES]
    runs = []
    for seed in (int(s) for s in args.seeds.split(",")):
        started = time.perf_counter()
        print(f"seed {seed}:", flush=True)
        figures = compare(seed)
        figures["seconds"] = time.perf_counter() - started
        print_table(figures, keys)
        runs.append(figures)
    wins = sum(1 for f in runs if f["auroc_ratio_best_vs_reference"] > 1.0 and f["net_benefit_ratio_best_vs_reference"] > 1.0)  # type: ignore[operator]
    print(f"\nbest federated beats the BCN-style reference on AUROC and net benefit at 15 %: {wins} of {len(runs)} seeds")
    if args.json is not None:
        args.json.write_text(json.dumps(runs[0], indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
