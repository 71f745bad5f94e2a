"""Sampling a saved generator into a versioned dataset and evaluating a dataset version: the
steps the CLI and the SDK share (F-IMSD-1/3/6/12, NF-IMSD-7). Training is a job
(`flute.synth.workspace.jobs`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from flute.synth.evaluate import Evaluation
from flute.synth.workspace.home import WorkspaceError
from flute.synth.workspace.store import CSV_FILE, DatasetVersion, Reference, SynthWorkspace, sha256_of


@dataclass(frozen=True)
class SampledDataset:
    """A new dataset version; `condition_probability` is the model probability of the
    conditions (None without conditions) and `exact_rate` the share of rows meeting them."""

    dataset: DatasetVersion
    condition_probability: float | None
    exact_rate: float


@dataclass(frozen=True)
class EvaluatedDataset:
    dataset: DatasetVersion
    evaluation: Evaluation


def sample_dataset(
    workspace: SynthWorkspace, source: Reference, rows: int, *, user: str, name: str | None = None, where: str = "", seed: int | None = None
) -> SampledDataset:
    """Draw `rows` rows (every one meeting `where`) from a saved generator and register them as
    the next version of `name` (default: the generator's name). Costs no privacy budget."""
    from flute.synth.conditions import holds, parse_conditions
    from flute.synth.io import write_table

    started = time.process_time()
    saved, fitted = workspace.load_generator(source)
    conditions = parse_conditions(where, fitted.schema)
    result = fitted.sample(rows, np.random.default_rng(seed), conditions)
    exact = float(holds(result.conditions, result.frame).mean()) if conditions else 1.0
    with workspace.staging() as folder:
        write_table(result.frame, fitted.schema, folder / CSV_FILE)
        dataset = workspace.register_dataset(name or saved.name, saved, folder, rows=len(result.frame), conditions=where, seed=seed, user=user)
    workspace.record_usage(user, "sample", f"dataset {dataset.name}:{dataset.version}", rows=len(result.frame), cpu_seconds=time.process_time() - started)
    return SampledDataset(dataset, result.condition_probability if conditions else None, exact)


def evaluate_dataset(
    workspace: SynthWorkspace, reference: Reference, train_csv: Path, holdout_csv: Path, *, user: str, target: str = "csPCa", seed: int = 0
) -> EvaluatedDataset:
    """Evaluate a dataset version against real train and holdout CSVs (run where those rows
    are), store the evaluation JSON on the version and write its HTML report next to its CSV."""
    from flute.synth.evaluate import evaluate
    from flute.synth.io import read_table
    from flute.synth.report import ReportInput, render_report

    started = time.process_time()
    dataset = workspace.dataset(reference)
    for path, expected in ((dataset.csv, dataset.csv_sha256), (dataset.schema, dataset.schema_sha256)):
        if sha256_of(path) != expected:
            raise WorkspaceError(f"{path} no longer matches the SHA-256 registered for {dataset.name}:{dataset.version}: it was changed after generation")
    frame, schema = read_table(dataset.csv)
    train, _ = read_table(train_csv, schema)
    holdout, _ = read_table(holdout_csv, schema)
    schema.column(target)
    evaluation = evaluate(schema, frame, train, holdout, target, seed=seed)
    provenance = {
        "dataset": f"{dataset.name} version {dataset.version}", "generator": dataset.generator, "hyperparameters": dataset.hyperparameters,
        "study": dataset.study, "hubs": list(dataset.hubs), "epsilon": dataset.epsilon, "delta": dataset.delta,
        "conditions": dataset.conditions or "none", "rows": dataset.rows, "seed": dataset.seed, "csv sha256": dataset.csv_sha256,
    }
    html = render_report(ReportInput(f"{dataset.name} v{dataset.version}", provenance, evaluation, schema, frame, train, holdout))
    dataset = workspace.attach_evaluation(dataset, evaluation.to_json(), html)
    workspace.record_usage(user, "evaluate", f"dataset {dataset.name}:{dataset.version}", cpu_seconds=time.process_time() - started)
    return EvaluatedDataset(dataset, evaluation)
