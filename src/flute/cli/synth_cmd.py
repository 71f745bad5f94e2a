"""`flute synth`: federated, differentially private synthetic tabular data (F-HUF-14/17,
F-IMSD-1/3/6/13/15).

- `train`: fit the marginal generator over hub homes (DP: each hub's ledger is charged first);
  the model is saved as JSON and can be sampled again and again (sampling is post-processing).
- `sample`: rows from a saved model, optionally under exact conditions, as CSV + schema JSON.
- `evaluate`: fidelity, TSTR utility and privacy of a synthetic CSV against real train and
  holdout CSVs - run it where those real rows are (a hub, the data owner's machine).
Thin: parses arguments, calls `flute.synth`, prints.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from flute.cohort.variables import AGE, PIRADS, PROSTATE_VOLUME, PSA

app = typer.Typer(help="Synthetic tabular data: train a generator across hubs, sample it, evaluate it.", no_args_is_help=True)

DEFAULT_VARIABLES = f"{AGE},{PSA},{PROSTATE_VOLUME},{PIRADS}"


@app.command("train")
def train(
    hub: Annotated[list[Path], typer.Option("--hub", help="A hub home (repeat for each hub).")],
    out: Annotated[Path, typer.Option("--out", help="Where to write the fitted model (JSON).")],
    epsilon: Annotated[float | None, typer.Option("--epsilon", help="Epsilon per record each hub spends (DP).")] = None,
    delta: Annotated[float, typer.Option("--delta", help="Delta per record (DP).")] = 1e-6,
    non_dp: Annotated[bool, typer.Option("--non-dp", help="Train on exact counts (no DP): only where the data owners accept it.")] = False,
    study: Annotated[str, typer.Option("--study", help="The study whose budget pays (ledger: study x the hub's name).")] = "synthetic-data",
    variables: Annotated[str, typer.Option("--variables", help="Comma-separated StudyVariables.")] = DEFAULT_VARIABLES,
    tree: Annotated[str | None, typer.Option("--tree", help="Declared tree, e.g. 'pirads-csPCa,psa-prostateVolume,...' (default: selected by MST).")] = None,
    selection_share: Annotated[float, typer.Option("--selection-share", help="Share of the budget that selects the tree.")] = 0.25,
) -> None:
    """Train the marginal generator over hub homes; write MODEL.json."""
    from flute.hub.consent import ConsentRefused
    from flute.hub.ledger import LedgerError
    from flute.synth.budget import MarginalBudget
    from flute.synth.federated import open_hub_homes
    from flute.synth.schema import SchemaError, study_schema
    from flute.synth.train import MarginalConfig, train_marginal

    if (epsilon is None) == (not non_dp):
        _fail("pass exactly one of --epsilon E (differential privacy) or --non-dp (exact counts)")
    try:
        names = tuple(v.strip() for v in variables.split(",") if v.strip())
        with open_hub_homes(hub, names, study) as hubs:
            schema = study_schema(names, [h.name for h in hubs])
            budget = None if epsilon is None else MarginalBudget(epsilon, delta, selection_share)
            config = MarginalConfig(study, budget, _tree(tree))
            model = train_marginal(hubs, schema, config)
    except (LedgerError, ConsentRefused) as exc:
        typer.echo(f"refused: {exc}", err=True)
        raise typer.Exit(1) from exc
    except (SchemaError, ValueError, FileNotFoundError) as exc:
        _fail(str(exc))
    out.write_text(model.to_json())
    provenance = model.provenance
    privacy = f"epsilon={provenance['epsilon']:.6g}, delta={provenance['delta']:g} per {provenance['unit_of_privacy']}" if provenance["mode"] == "dp" else "none (exact counts)"
    typer.echo(f"model written to {out} | hubs {', '.join(provenance['hubs'])} | DP: {privacy}")
    typer.echo(f"tree ({provenance['structure']}): " + ", ".join(f"{a}-{b}" for a, b in provenance["tree"]))


@app.command("sample")
def sample(
    model: Annotated[Path, typer.Argument(help="A model written by `flute synth train`.")],
    rows: Annotated[int, typer.Option("--rows", min=1, help="How many rows.")],
    out: Annotated[Path, typer.Option("--out", help="The CSV to write (its schema goes to OUT.schema.json).")],
    where: Annotated[str, typer.Option("--where", help="Conditions, e.g. 'cspca=1,age>70,pirads in 4|5,centre=RUMC'.")] = "",
    seed: Annotated[int | None, typer.Option("--seed", help="Seed of the sampler (reproducible output).")] = None,
) -> None:
    """Draw rows from a saved model; every row meets the conditions exactly."""
    import numpy as np

    from flute.synth.conditions import ConditionError, holds, parse_conditions
    from flute.synth.io import write_table
    from flute.synth.marginal import ModelError, TreeModel

    try:
        fitted = TreeModel.from_json(model.read_text(), source=str(model))
        conditions = parse_conditions(where, fitted.schema)
        result = fitted.sample(rows, np.random.default_rng(seed), conditions)
    except (ModelError, ConditionError, FileNotFoundError) as exc:
        _fail(str(exc))
    exact = float(holds(result.conditions, result.frame).mean())
    schema_file = write_table(result.frame, fitted.schema, out)
    typer.echo(f"{len(result.frame)} rows written to {out} (schema {schema_file})")
    if conditions:
        described = "; ".join(c.describe() for c in conditions)
        typer.echo(f"conditions: {described} | model probability {result.condition_probability:.4g} | rows meeting them {exact:.1%} (exact conditioning, none rejected)")


@app.command("evaluate")
def evaluate(
    synthetic: Annotated[Path, typer.Argument(help="A synthetic CSV with its schema JSON next to it.")],
    train_csv: Annotated[Path, typer.Option("--train", help="The real rows the generator was trained on (CSV, same columns).")],
    holdout_csv: Annotated[Path, typer.Option("--holdout", help="Real rows NOT used in training (CSV, same columns).")],
    target: Annotated[str, typer.Option("--target", help="The label column for TSTR.")] = "csPCa",
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")] = False,
) -> None:
    """Fidelity, TSTR utility and privacy of a synthetic table (run where the real rows are)."""
    from flute.synth.evaluate import evaluate as run_evaluation
    from flute.synth.io import read_table
    from flute.synth.schema import SchemaError

    try:
        frame, schema = read_table(synthetic)
        train_frame, _ = read_table(train_csv, schema)
        holdout_frame, _ = read_table(holdout_csv, schema)
        schema.column(target)
        report = run_evaluation(schema, frame, train_frame, holdout_frame, target)
    except (SchemaError, FileNotFoundError) as exc:
        _fail(str(exc))
    if as_json:
        typer.echo(json.dumps(report.to_json(), indent=2))
        return
    f, u, p = report.fidelity, report.utility, report.privacy
    typer.echo("fidelity: " + ", ".join(f"{name} {value:.3f}" for name, value in f.column_distance.items()) + f" (KS/TV; mean {f.mean_column_distance:.3f}); correlation difference {f.correlation_difference:.3f}")
    typer.echo(f"utility (AUROC on the holdout): TSTR LR {u.tstr_lr:.3f}, GB {u.tstr_gb:.3f} | train on real: LR {u.trtr_lr:.3f}, GB {u.trtr_gb:.3f}")
    typer.echo(f"privacy: DCR ratio train/holdout {p.dcr_ratio:.3f} (>= 0.9 wanted), membership-inference AUC {p.mia_auc:.3f} (<= 0.55 wanted), exact copies {p.exact_copies}")


def _tree(text: str | None) -> tuple[tuple[str, str], ...] | None:
    if text is None:
        return None
    pairs = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        ends = part.split("-")
        if len(ends) != 2:
            _fail(f"--tree: cannot read pair {part!r}; write COLUMN-COLUMN pairs separated by commas")
        pairs.append((ends[0].strip(), ends[1].strip()))
    return tuple(pairs)


def _fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)
