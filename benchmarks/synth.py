"""Benchmark: federated synthetic data on PI-CAI's three centres, every registered generator side by
side with centralised SDV and smartnoise references (F-IMSD-3/13/17, F-HUF-11..14, NF-IMSD-3/4).

Three centres = three in-memory hubs (secure sums in one process). Features: age, PSA, prostate
volume, PI-RADS (case level = the largest lesion score), centre; label csPCa. 70/30 split,
stratified by csPCa, seed 0. Arms: every generator of `flute.synth.generators` (or --generators)
x privacy settings nodp, eps1, eps3 (delta 1e-6 per study), each trained --repeats times with
fresh noise (means, and worst cases in the *_min / *_max keys). References, fitted once each on
the POOLED train rows (`flute.synth.references`): train-on-real, SDV GaussianCopula and TVAE
(non-DP), smartnoise MST at epsilon 1. Every synthetic table has as many rows as the train split
and is scored on the real holdout (TSTR), against the train rows (SDMetrics quality, KS/TV) and
train vs holdout (DCR ratio, membership-inference AUC, exact copies).

    .venv/bin/python benchmarks/synth.py [--data PATH] [--json PATH] [--repeats N]
        [--generators marginal,diffusion] [--quick]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from flute.synth.conditions import ConditionError, holds, parse_conditions
from flute.synth.evaluate import Evaluation, augmented_auroc, evaluate, sdmetrics_quality, utility
from flute.synth.federated import SynthHub
from flute.synth.generators import FittedGenerator, GeneratorPlugin, TrainSettings, generator, generator_names
from flute.synth.references import TVAE_EPOCHS, Reference, references
from flute.synth.schema import CENTRE, CSPCA, TableSchema, study_schema

if TYPE_CHECKING:
    import pandas as pd

DEFAULT_DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "picai" / "marksheet.csv"
CENTRES = ("RUMC", "PCNN", "ZGT")
VARIABLES = ("ageAtBiopsy", "psa", "prostateVolume", "pirads")
DELTA = 1e-6
SETTINGS: tuple[tuple[str, float | None], ...] = (("nodp", None), ("eps1", 1.0), ("eps3", 3.0))
#: The issue's conditional requests (csPCa=1; age>70 & csPCa=1 & a given centre) and a few more.
CONDITIONS = ("cspca=1", "age>70,cspca=1,centre=PCNN", "age>70", "pirads in 4|5", "centre=ZGT", "psa>=10,prostateVolume<40")
#: The marginal generator's tree under DP (public clinical knowledge, fixed before seeing the
#: data): csPCa linked to each predictor, PI-RADS to the centre. Declaring it puts the whole budget
#: on measurement; without DP the generator selects the Chow-Liu tree from exact counts.
DECLARED_TREE = [["csPCa", "pirads"], ["csPCa", "psa"], ["csPCa", "prostateVolume"], ["csPCa", "ageAtBiopsy"], ["pirads", "centre"]]
#: Trainings per setting when --repeats is not given: the marginal generator trains in a fraction
#: of a second, so its DP noise is averaged over 5 runs; a neural training takes minutes, so once.
DEFAULT_REPEATS = {"marginal": 5}
#: Hyperparameters that set a training's length, cut to a tenth by --quick.
QUICK_SCALED = ("epochs", "rounds")
#: Which reference each of our settings is set against (ratios `<metric>_vs_<reference>_<g>_<s>`).
REFERENCE_OF_SETTING = {"nodp": ("sdv_gaussiancopula", "sdv_tvae"), "eps1": ("mst_eps1",), "eps3": ("mst_eps1",)}


@dataclass(frozen=True)
class RunSize:
    """How much work one run does; --quick shrinks it to a smoke test. `repeats` None = the
    generator's default (`default_repeats`)."""

    repeats: int | None
    speed_rows: int
    condition_rows: int
    tvae_epochs: int
    quick: bool

    def repeats_of(self, name: str) -> int:
        if self.repeats is not None:
            return self.repeats
        return 1 if self.quick else DEFAULT_REPEATS.get(name, 1)


@dataclass
class Arm:
    """The evaluations of one generator x setting (or one reference) over its repeats."""

    key: str
    evaluations: list[Evaluation] = field(default_factory=list)
    augmented: list[float] = field(default_factory=list)
    train_seconds: list[float] = field(default_factory=list)
    rows_per_s: float | None = None
    error: str | None = None

    def figures(self) -> dict[str, float]:
        """Flat figures: means over repeats, the worst cases, copies summed over repeats."""
        if not self.evaluations:
            return {}
        series = {
            "tstr_lr": [e.utility.tstr_lr for e in self.evaluations], "tstr_gb": [e.utility.tstr_gb for e in self.evaluations],
            "sdm_quality": [e.fidelity.sdm_quality for e in self.evaluations], "mia_auc": [e.privacy.mia_auc for e in self.evaluations],
            "dcr_ratio": [e.privacy.dcr_ratio for e in self.evaluations], "fidelity": [e.fidelity.mean_column_distance for e in self.evaluations],
            "correlation_difference": [e.fidelity.correlation_difference for e in self.evaluations], "augmented_lr": self.augmented,
            "train_s": self.train_seconds,
        }
        out = {f"{name}_{self.key}": float(np.mean(values)) for name, values in series.items()}
        out |= {
            f"tstr_lr_min_{self.key}": float(np.min(series["tstr_lr"])), f"sdm_quality_min_{self.key}": float(np.min(series["sdm_quality"])),
            f"mia_auc_max_{self.key}": float(np.max(series["mia_auc"])), f"dcr_ratio_min_{self.key}": float(np.min(series["dcr_ratio"])),
            f"exact_copies_{self.key}": float(sum(e.privacy.exact_copies for e in self.evaluations)),
        }
        return out


@dataclass(frozen=True)
class Study:
    """The split table every arm is trained and scored on."""

    schema: TableSchema
    train: pd.DataFrame
    holdout: pd.DataFrame
    hubs: tuple[SynthHub, ...]

    def score(self, arm: Arm, synthetic: pd.DataFrame, seed: int) -> None:
        arm.evaluations.append(evaluate(self.schema, synthetic, self.train, self.holdout, CSPCA, seed=seed))
        arm.augmented.append(augmented_auroc(self.schema, synthetic, self.train, self.holdout, CSPCA, seed=seed))


def load_picai(path: Path) -> pd.DataFrame:
    import pandas as pd

    raw = pd.read_csv(path)

    def case_pirads(text: object) -> float:
        scores = [int(part) for part in str(text).split(",") if part.strip().isdigit()]
        return float(max(scores)) if scores else np.nan

    return pd.DataFrame(
        {
            "ageAtBiopsy": raw["patient_age"], "psa": raw["psa"].round(1), "prostateVolume": raw["prostate_volume"].round(1),
            "pirads": raw["lesion_PIRADS"].map(case_pirads), CENTRE: raw["center"], CSPCA: (raw["case_csPCa"] == "YES").astype(int),
        }
    )


def split_study(frame: pd.DataFrame) -> Study:
    from sklearn.model_selection import train_test_split

    train, holdout = train_test_split(frame, test_size=0.3, stratify=frame[CSPCA], random_state=0)
    hubs = tuple(SynthHub(centre, train[train[CENTRE] == centre].reset_index(drop=True)) for centre in CENTRES)
    return Study(study_schema(VARIABLES, CENTRES), train.reset_index(drop=True), holdout.reset_index(drop=True), hubs)


def hyperparameters(plugin: GeneratorPlugin, epsilon: float | None, size: RunSize) -> dict[str, Any]:
    """The plugin's defaults, with the benchmark's two choices: the marginal generator's declared
    tree under DP, and (--quick) a tenth of any training length (QUICK_SCALED)."""
    chosen: dict[str, Any] = {}
    if plugin.name == "marginal" and epsilon is not None:
        chosen["tree"] = DECLARED_TREE
    if size.quick:
        defaults = plugin.default_hyperparameters()
        chosen |= {key: max(1, defaults[key] // 10) for key in QUICK_SCALED if isinstance(defaults.get(key), int)}
    return chosen


def progress(message: str) -> None:
    """Where a long run is, on stderr (the table goes to stdout at the end)."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def run_generator(study: Study, plugin: GeneratorPlugin, setting: str, epsilon: float | None, size: RunSize, rng: np.random.Generator) -> tuple[Arm, FittedGenerator | None]:
    """Train and score one generator at one setting `size.repeats_of(name)` times (fresh noise each);
    a failure is recorded on the arm (printed, its keys absent) so the other arms still run."""
    arm, model = Arm(f"{plugin.name}_{setting}"), None
    try:
        repeats = size.repeats_of(plugin.name)
        for repeat in range(repeats):
            progress(f"{arm.key}: training {repeat + 1}/{repeats}")
            settings = TrainSettings("benchmark", epsilon, DELTA, hyperparameters(plugin, epsilon, size), seed=repeat)
            start = time.perf_counter()
            model = plugin.train(list(study.hubs), study.schema, settings)
            arm.train_seconds.append(time.perf_counter() - start)
            study.score(arm, model.sample(len(study.train), rng).frame, repeat)
    except Exception as exc:  # noqa: BLE001 - reported per arm, the benchmark goes on
        arm.error = f"{type(exc).__name__}: {exc}"
        traceback.print_exc(file=sys.stderr)
    return arm, model


def run_reference(study: Study, reference: Reference, size: RunSize, rng: np.random.Generator) -> Arm:
    arm = Arm(reference.key)
    progress(f"{reference.key}: fitting {reference.description}")
    start = time.perf_counter()
    sampler = reference.fit(study.schema, study.train)
    arm.train_seconds.append(time.perf_counter() - start)
    study.score(arm, sampler.sample(len(study.train), rng), 0)
    arm.rows_per_s = rows_per_second(lambda rows: sampler.sample(rows, rng), size.speed_rows)
    return arm


def rows_per_second(sample: Callable[[int], object], rows: int) -> float:
    start = time.perf_counter()
    sample(rows)
    return rows / (time.perf_counter() - start)


def conditional_exactness(model: FittedGenerator, schema: TableSchema, rows: int, rng: np.random.Generator) -> float:
    """Share of the requested rows, over every condition in CONDITIONS, that were delivered AND
    meet their conditions (a refused request delivers none)."""
    exact = 0
    for text in CONDITIONS:
        conditions = parse_conditions(text, schema)
        try:
            frame = model.sample(rows, rng, conditions).frame
        except ConditionError as exc:
            print(f"conditional request {text!r} refused: {exc}", file=sys.stderr)
            continue
        exact += int(holds(conditions, frame)[:rows].sum())
    return exact / (rows * len(CONDITIONS))


def ratios(results: dict[str, float], generators: Sequence[str]) -> dict[str, float]:
    """Ours over the named references: TSTR LR over train-on-real, and TSTR LR and SDMetrics
    quality over the setting's centralised reference (REFERENCE_OF_SETTING)."""
    out = {}
    for name in generators:
        for setting, _ in SETTINGS:
            key = f"{name}_{setting}"
            if f"tstr_lr_{key}" not in results:
                continue
            out[f"tstr_lr_ratio_{key}"] = results[f"tstr_lr_{key}"] / results["tstr_lr_real"]
            for reference in REFERENCE_OF_SETTING[setting]:
                for metric in ("tstr_lr", "sdm_quality"):
                    if f"{metric}_{reference}" in results:
                        out[f"{metric}_vs_{reference}_{key}"] = results[f"{metric}_{key}"] / results[f"{metric}_{reference}"]
    return out


def targets(results: dict[str, float], generators: Sequence[str]) -> list[tuple[str, bool | None]]:
    """The issue's targets: (label with the figure, passed), passed None where the figure is
    absent. Utility targets use means over repeats, privacy targets the worst case over repeats
    and settings."""

    def check(label: str, value: float | None, passes: Callable[[float], bool]) -> tuple[str, bool | None]:
        shown = "absent" if value is None else f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3f}"
        return f"{label} ({shown})", None if value is None else passes(value)

    def worst(prefix: str, name: str, pick: Callable[[list[float]], float]) -> float | None:
        found = [results[f"{prefix}_{name}_{s}"] for s, _ in SETTINGS if f"{prefix}_{name}_{s}" in results]
        return pick(found) if found else None

    lines = [
        check("diffusion nodp TSTR LR >= 0.85", results.get("tstr_lr_diffusion_nodp"), lambda v: v >= 0.85),
        check("diffusion nodp SDM quality >= 0.93", results.get("sdm_quality_diffusion_nodp"), lambda v: v >= 0.93),
    ]
    for name in generators:
        speed = 5_000 if name == "diffusion" else 50_000
        lines += [
            check(f"{name} eps1 TSTR LR >= 0.78", results.get(f"tstr_lr_{name}_eps1"), lambda v: v >= 0.78),
            check(f"{name} eps1 SDM quality >= 0.88", results.get(f"sdm_quality_{name}_eps1"), lambda v: v >= 0.88),
            check(f"{name} eps3 TSTR LR >= 0.82", results.get(f"tstr_lr_{name}_eps3"), lambda v: v >= 0.82),
            check(f"{name} MIA AUC <= 0.55", worst("mia_auc_max", name, max), lambda v: v <= 0.55),
            check(f"{name} DCR ratio >= 0.9", worst("dcr_ratio_min", name, min), lambda v: v >= 0.9),
            check(f"{name} exact copies = 0", worst("exact_copies", name, sum), lambda v: v == 0),
            check(f"{name} rows/s >= {speed:,}", results.get(f"rows_per_s_{name}"), lambda v, floor=speed: v >= floor),
        ]
    lines.append(check("conditional requests 100 % exact", results.get("conditional_exact_rate"), lambda v: v == 1.0))
    return lines


def print_table(arms: Sequence[Arm], results: dict[str, float]) -> None:
    """One row per arm (failed arms say why), then train-on-real."""
    header = ("arm", "TSTR LR", "(min)", "TSTR GB", "SDM qual", "MIA AUC", "(max)", "DCR ratio", "(min)", "copies", "rows/s", "train s", "LR/real", "LR/ref")
    rows, failures = [header], []
    for arm in arms:
        if arm.error is not None:
            failures.append(f"{arm.key}: FAILED {arm.error}")
            continue
        k = arm.key
        vs_reference = [f"{results[key]:.3f}" for key in results if key.startswith("tstr_lr_vs_") and key.endswith(f"_{k}")]
        speed = results.get(f"rows_per_s_{k}", results.get(f"rows_per_s_{k.rsplit('_', 1)[0]}"))
        metrics = ("tstr_lr", "tstr_lr_min", "tstr_gb", "sdm_quality", "mia_auc", "mia_auc_max", "dcr_ratio", "dcr_ratio_min")
        rows.append(
            (
                k, *(f"{results[f'{m}_{k}']:.3f}" for m in metrics), f"{results[f'exact_copies_{k}']:.0f}", "" if speed is None else f"{speed:,.0f}",
                f"{results[f'train_s_{k}']:.1f}", f"{results[f'tstr_lr_{k}'] / results['tstr_lr_real']:.3f}", "/".join(vs_reference),
            )
        )
    rows.append(("real (TRTR)", f"{results['tstr_lr_real']:.3f}", "", f"{results['tstr_gb_real']:.3f}", f"{results['sdm_quality_real']:.3f}", *[""] * 9))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    for failure in failures:
        print(failure)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--repeats", type=int, help="Trainings per generator and setting, fresh noise each (default: 5 for marginal, 1 for the neural generators, whose training takes minutes; 1 with --quick).")
    parser.add_argument("--generators", help=f"Comma-separated subset of the registered generators (default: all of {', '.join(generator_names())}).")
    parser.add_argument("--quick", action="store_true", help="Smoke run: 1 repeat, a tenth of the epochs, small speed and conditional samples.")
    args = parser.parse_args()
    if not args.data.exists():
        print(f"skipped: PI-CAI marksheet not found at {args.data} (pass --data PATH)")
        return 0
    size = RunSize(args.repeats, 20_000 if args.quick else 200_000, 200 if args.quick else 2_000, TVAE_EPOCHS // 10 if args.quick else TVAE_EPOCHS, args.quick)
    names = tuple(n.strip() for n in args.generators.split(",")) if args.generators else generator_names()
    plugins = [generator(name) for name in names]  # an unknown name fails here, listing the known ones
    started = time.perf_counter()
    study = split_study(load_picai(args.data))
    rng = np.random.default_rng(0)
    results: dict[str, float] = {}
    arms: list[Arm] = []
    exact_rates = []
    for plugin in plugins:
        model = None
        for setting, epsilon in SETTINGS:
            arm, trained = run_generator(study, plugin, setting, epsilon, size, rng)
            arms.append(arm)
            results |= arm.figures()
            model = trained if arm.error is None else model
            if args.json:  # a long run stopped early still leaves the arms it finished
                args.json.write_text(json.dumps(results, indent=2))
        if model is not None:
            results[f"rows_per_s_{plugin.name}"] = rows_per_second(lambda rows: model.sample(rows, rng), size.speed_rows)
            results[f"conditional_exact_rate_{plugin.name}"] = conditional_exactness(model, study.schema, size.condition_rows, rng)
            exact_rates.append(results[f"conditional_exact_rate_{plugin.name}"])
    if exact_rates:
        results["conditional_exact_rate"] = float(np.mean(exact_rates))
    trtr = utility(study.schema, study.train, study.train, study.holdout, CSPCA)
    results |= {"tstr_lr_real": trtr.trtr_lr, "tstr_gb_real": trtr.trtr_gb, "sdm_quality_real": sdmetrics_quality(study.schema, study.holdout, study.train)}
    for reference in references(mst_epsilon=1.0, tvae_epochs=size.tvae_epochs):
        arm = run_reference(study, reference, size, rng)
        arms.append(arm)
        results |= arm.figures() | {f"rows_per_s_{reference.key}": arm.rows_per_s}
    results |= ratios(results, names)
    results["runtime_s"] = time.perf_counter() - started
    print_table(arms, results)
    print("LR/real: TSTR LR over train-on-real; LR/ref: over sdv_gaussiancopula/sdv_tvae (nodp), over mst_eps1 (eps1, eps3)")
    print(f"references fitted once each on the pooled train rows; TVAE {size.tvae_epochs} epochs; ours {', '.join(f'{n} {size.repeats_of(n)}' for n in names)} repeat(s) per setting, delta {DELTA:g}")
    print(f"conditional exact rate {results.get('conditional_exact_rate', float('nan')):.3f} over {', '.join(CONDITIONS)}; runtime {results['runtime_s']:.0f} s")
    print("targets: " + "; ".join(f"{label} {'PASS' if ok else 'FAIL' if ok is False else 'ABSENT'}" for label, ok in targets(results, names)))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
