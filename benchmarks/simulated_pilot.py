"""Simulated pilot cohort: the federated model zoo vs the BCN-style reference and PI-RADS alone (F-PIL-15).

The three simulated pilot hospitals (`flute.cohort`, seed 0, 1x: 2,890 included men; each site's
outcomes follow its own evidence-anchored true model, `flute.cohort.risk_model`) as three
in-memory hubs; side by side in one run, on the SAME 5-fold CV folds:
- every candidate model of the demo (`flute.demo.DEMO_CANDIDATES`: logistic regression, linear
  SVM, MLP, decision tree, random forest, gradient-boosted trees), federated through the embedded
  engine; the best by pooled out-of-fold AUROC is "best federated" (the demo's model selection);
- the comparators of the best model's study (`evaluation.comparators`): the BCN-style reference
  (published odds ratios, intercept recalibrated per fold) and PI-RADS alone.
Figures: pooled out-of-fold AUROC and net benefit at a 15 % risk threshold. The ratios compare
the best federated model with the reference. `--seeds 0,1,2` repeats on other simulated cohorts.

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
    from flute.cohort.sim_tables import simulated_site_tables
    from flute.demo import pooled_cv_score, select_model
    from flute.engine.apps import client_app, server_app
    from flute.engine.comparators import LABELS
    from flute.engine.embedded import HubBinding, run_embedded, study_run_config
    from flute.engine.sources import InMemorySource
    from flute.engine.validation import validation_report

    tables = simulated_site_tables(seed)
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
    figures["auroc_ratio_best_vs_reference"] = best.auroc / float(figures["auroc_bcn_reference"])
    figures["net_benefit_ratio_best_vs_reference"] = best.net_benefit / float(figures["net_benefit_bcn_reference"])
    return figures


def print_table(figures: dict[str, float | str], keys: list[str]) -> None:
    print(f"\nseed {figures['seed']}: {figures['patients']} included labelled men, 5-fold CV (same folds for every row)")
    print(f"{'predictor':34s} {'AUROC':>8s} {'NB at 15 %':>11s}")
    for key in keys:
        print(f"{'federated ' + key:34s} {figures[f'auroc_federated_{key}']:8.4f} {figures[f'net_benefit_federated_{key}']:11.4f}")
    print(f"{'best federated (' + str(figures['best_federated']) + ')':34s} {figures['auroc_best_federated']:8.4f} {figures['net_benefit_best_federated']:11.4f}")
    print(f"{'BCN-style reference':34s} {figures['auroc_bcn_reference']:8.4f} {figures['net_benefit_bcn_reference']:11.4f}")
    print(f"{'PI-RADS alone':34s} {figures['auroc_pirads_only']:8.4f} {figures['net_benefit_pirads_only']:11.4f}")
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
    if args.json is not None:
        args.json.write_text(json.dumps(runs[0], indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
