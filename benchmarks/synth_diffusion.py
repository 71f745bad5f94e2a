"""Benchmark: the federated diffusion generator on PI-CAI's three centres (F-HUF-12, F-IMSD-3/13,
NF-IMSD-3/4), next to the classifiers trained on the real rows (TRTR).

Same data, split and hubs as `benchmarks/synth.py` (three centres = three in-memory hubs, secure
aggregation in one process; features age, PSA, prostate volume, PI-RADS, centre; label csPCa;
70/30 split stratified by csPCa, seed 0). Arms: non-DP, epsilon 3 and epsilon 1 (delta 1e-6,
record-level DP-SGD at every hub). Targets (issue 7): non-DP TSTR AUROC (LR) >= 0.85, SDMetrics
quality >= 0.93; MIA AUC <= 0.55, DCR ratio >= 0.9, no exact copies; >= 5,000 rows/s sampling;
conditional requests 100 % exact.

    .venv/bin/python benchmarks/synth_diffusion.py [--data PATH] [--json PATH] [--arms nodp,eps3,eps1]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from flute.synth.conditions import holds, parse_conditions
from flute.synth.evaluate import evaluate
from flute.synth.federated import SynthHub
from flute.synth.generators import TrainSettings, generator
from flute.synth.schema import CENTRE, CSPCA, study_schema

sys.path.insert(0, str(Path(__file__).resolve().parent))
from synth import CENTRES, CONDITIONS, DEFAULT_DATA, VARIABLES, load_picai  # noqa: E402

ARMS = {"nodp": None, "eps3": 3.0, "eps1": 1.0}
ROWS_SPEED = 50_000
#: Non-DP: the plugin's defaults (600 rounds of 2 local SGD steps, server Adam; 128-wide MLP).
NON_DP: dict[str, object] = {}
#: DP: a much smaller denoiser (the noise per parameter is fixed, the signal spreads over all of
#: them), full-batch DP-SGD (sampling rate 1) and one local step per round.
DP = {"rounds": 150, "local_steps": 1, "batch_size": 1024, "server_learning_rate": 0.01, "hidden": 32, "depth": 1, "max_grad_norm": 0.5}

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--arms", default=",".join(ARMS), help="comma-separated subset of nodp, eps3, eps1")
    args = parser.parse_args()
    if not args.data.exists():
        print(f"skipped: PI-CAI marksheet not found at {args.data} (pass --data PATH)")
        return 0
    from sklearn.model_selection import train_test_split

    frame = load_picai(args.data)
    schema = study_schema(VARIABLES, CENTRES)
    # typed like the generator's output (PI-RADS as integers, not 4.0), so per-column TV compares like with like
    frame = schema.typed_frame({name: frame[name].to_numpy(dtype=object) for name in schema.names})
    train, holdout = train_test_split(frame, test_size=0.3, stratify=frame[CSPCA], random_state=0)
    hubs = [SynthHub(centre, train[train[CENTRE] == centre].reset_index(drop=True)) for centre in CENTRES]
    results: dict[str, float] = {}
    rows = [("arm", "train s", "TSTR LR", "TSTR/TRTR", "SDM quality", "KS/TV", "MIA AUC", "DCR ratio", "copies")]
    rng = np.random.default_rng(0)
    for arm in args.arms.split(","):
        epsilon = ARMS[arm]
        start = time.perf_counter()
        model = generator("diffusion").train(hubs, schema, TrainSettings("benchmark", epsilon=epsilon, hyperparameters=NON_DP if epsilon is None else DP, seed=0))
        seconds = time.perf_counter() - start
        report = evaluate(schema, model.sample(len(train), rng).frame, train, holdout, CSPCA)
        results |= {
            f"train_s_diffusion_{arm}": seconds, f"tstr_lr_diffusion_{arm}": report.utility.tstr_lr, f"sdm_quality_diffusion_{arm}": report.fidelity.sdm_quality,
            f"mia_auc_diffusion_{arm}": report.privacy.mia_auc, f"dcr_ratio_diffusion_{arm}": report.privacy.dcr_ratio, f"exact_copies_diffusion_{arm}": report.privacy.exact_copies,
        }
        results["tstr_lr_real"] = report.utility.trtr_lr
        rows.append((arm, f"{seconds:.0f}", f"{report.utility.tstr_lr:.3f}", f"{report.utility.tstr_lr / report.utility.trtr_lr:.3f}", f"{report.fidelity.sdm_quality:.3f}",
                     f"{report.fidelity.mean_column_distance:.3f}", f"{report.privacy.mia_auc:.3f}", f"{report.privacy.dcr_ratio:.3f}", str(report.privacy.exact_copies)))
        if epsilon is None:
            start = time.perf_counter()
            model.sample(ROWS_SPEED, rng)
            results["rows_per_s_diffusion"] = ROWS_SPEED / (time.perf_counter() - start)
            exact = [holds(c, model.sample(2000, rng, c).frame).mean() for c in (parse_conditions(text, schema) for text in CONDITIONS)]
            results["conditional_exact_rate_diffusion"] = float(np.mean(exact))
    rows.append(("real (TRTR)", "", f"{results['tstr_lr_real']:.3f}", "1.000", "", "", "", "", ""))
    for row in rows:
        print(" | ".join(f"{cell:<11}" for cell in row))
    if "rows_per_s_diffusion" in results:
        print(f"rows/s {results['rows_per_s_diffusion']:,.0f}; conditional exact rate {results['conditional_exact_rate_diffusion']:.3f}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
