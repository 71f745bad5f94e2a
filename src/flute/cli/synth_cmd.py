"""`flute synth`: federated, differentially private synthetic tabular data (F-HUF-14/17,
F-IMSD-1/2/3/6/10/12/13/15/16/17, NF-IMSD-5/7).

- `train`: a training JOB of a generator (`--generator`, default marginal) over hub homes (DP:
  each hub's ledger is charged first); the generator is saved in the workspace as NAME:VERSION.
  `--background` returns at once (the job runs in its own process; `list` follows it, `cancel`
  stops it). Hyperparameters: the generator's defaults, then the user's draft (`--from-draft`),
  then `--set KEY=VALUE`.
- `sample`: rows from a saved generator, optionally under exact conditions, registered as the
  next version of a dataset (CSV + schema JSON in the workspace, SHA-256 recorded).
- `evaluate`: fidelity, TSTR utility and privacy of a dataset version (or any synthetic CSV)
  against real train and holdout CSVs, with a self-contained HTML report - run it where those
  real rows are.
- `list`: generators, saved generators, dataset versions, jobs and usage; `drafts`: saved
  hyperparameters per user; `cancel`, `wait`: jobs.
File mode (no workspace): `train --out MODEL.json` (marginal only) and `sample MODEL.json --out
DATA.csv` read and write plain files, as before; they are neither versioned nor metered.
Thin: parses arguments, calls `flute.synth`, prints.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from flute.cohort.variables import AGE, PIRADS, PROSTATE_VOLUME, PSA

if TYPE_CHECKING:
    from flute.synth.evaluate import Evaluation
    from flute.synth.workspace.jobs import JobInfo
    from flute.synth.workspace.store import SynthWorkspace

app = typer.Typer(help="Synthetic tabular data: train a generator across hubs, sample it, evaluate it.", no_args_is_help=True)
drafts_app = typer.Typer(help="Hyperparameter drafts: save them per generator, apply them later (train --from-draft), reset them.", no_args_is_help=True)
app.add_typer(drafts_app, name="drafts")

DEFAULT_VARIABLES = f"{AGE},{PSA},{PROSTATE_VOLUME},{PIRADS}"
WorkspaceOption = Annotated[Path | None, typer.Option("--workspace", help="The synthetic-data workspace home (default $FLUTE_SYNTH_WORKSPACE, else ./flute-synth-workspace).")]
UserOption = Annotated[str | None, typer.Option("--user", help="Who is metered and owns drafts (default $FLUTE_USER, else the login name).")]
SetOption = Annotated[list[str] | None, typer.Option("--set", help="A hyperparameter KEY=VALUE (VALUE as JSON, else text); repeat.")]


@app.command("train")
def train(
    hub: Annotated[list[Path], typer.Option("--hub", help="A hub home (repeat for each hub).")],
    out: Annotated[Path | None, typer.Option("--out", help="File mode: write the marginal model JSON here instead of saving it in a workspace.")] = None,
    epsilon: Annotated[float | None, typer.Option("--epsilon", help="Epsilon per record each hub spends (DP).")] = None,
    delta: Annotated[float, typer.Option("--delta", help="Delta per record (DP).")] = 1e-6,
    non_dp: Annotated[bool, typer.Option("--non-dp", help="Train without DP: only where the data owners accept it.")] = False,
    study: Annotated[str, typer.Option("--study", help="The study whose budget pays (ledger: study x the hub's name).")] = "synthetic-data",
    variables: Annotated[str, typer.Option("--variables", help="Comma-separated StudyVariables.")] = DEFAULT_VARIABLES,
    generator_name: Annotated[str, typer.Option("--generator", help="The generator plugin (see `flute synth list`).")] = "marginal",
    settings: SetOption = None,
    from_draft: Annotated[bool, typer.Option("--from-draft", help="Apply your saved draft of this generator's hyperparameters.")] = False,
    tree: Annotated[str | None, typer.Option("--tree", help="marginal: declared tree, e.g. 'pirads-csPCa,psa-prostateVolume,...' (default: selected by MST).")] = None,
    selection_share: Annotated[float | None, typer.Option("--selection-share", help="marginal: share of the budget that selects the tree (default 0.25).")] = None,
    name: Annotated[str | None, typer.Option("--name", help="Save the generator under this name (default STUDY-GENERATOR); each training is a new version.")] = None,
    background: Annotated[bool, typer.Option("--background", help="Start the job in its own process and return at once.")] = False,
    seed: Annotated[int | None, typer.Option("--seed", help="Seed for the generator's own randomness (never the DP noise).")] = None,
    workspace: WorkspaceOption = None,
    user: UserOption = None,
) -> None:
    """Train a generator over hub homes and save it (a job; `--background` to detach)."""
    from flute.synth.workspace.jobs import Jobs, TrainRequest
    from flute.synth.workspace.home import WorkspaceError, resolve_user

    if (epsilon is None) == (not non_dp):
        _fail("pass exactly one of --epsilon E (differential privacy) or --non-dp (exact counts)")
    names = tuple(v.strip() for v in variables.split(",") if v.strip())
    overrides = _settings(settings) | _marginal_options(tree, selection_share)
    if out is not None:
        if not _file_mode(workspace):
            _fail("--out writes a model file without a workspace; with a workspace (--workspace or $FLUTE_SYNTH_WORKSPACE) the generator is saved there as --name")
        _train_to_file(hub, names, study, generator_name, epsilon, delta, overrides, out)
        return
    who = resolve_user(user)
    with _workspace(workspace) as ws:
        try:
            values = ws.hyperparameters(who, generator_name, overrides, from_draft=from_draft)
            request = TrainRequest(tuple(str(h.resolve()) for h in hub), names, study, generator_name, name or f"{study}-{generator_name}", epsilon, delta, values, seed)
            jobs = Jobs(ws)
            job = jobs.submit(who, request)
        except (WorkspaceError, ValueError) as exc:
            _fail(str(exc))
        if background:
            jobs.start(job.id)
            typer.echo(f"job {job.id} started ({generator_name}, study {study}); follow it with `flute synth list`, stop it with `flute synth cancel {job.id}`")
            return
        finished = jobs.run(job.id, on_progress=lambda fraction, message: typer.echo(f"[{fraction:4.0%}] {message}"))
        _report_job(ws, finished)


@app.command("sample")
def sample(
    model: Annotated[str, typer.Argument(help="A saved generator NAME[:VERSION] in the workspace, or (file mode) a model JSON written by `train --out`.")],
    rows: Annotated[int, typer.Option("--rows", min=1, help="How many rows.")],
    out: Annotated[Path | None, typer.Option("--out", help="Also (file mode: only) write the CSV here; its schema goes to OUT.schema.json.")] = None,
    where: Annotated[str, typer.Option("--where", help="Conditions, e.g. 'cspca=1,age>70,pirads in 4|5,centre=RUMC'.")] = "",
    seed: Annotated[int | None, typer.Option("--seed", help="Seed of the sampler (reproducible output).")] = None,
    name: Annotated[str | None, typer.Option("--name", help="The dataset's name (default: the generator's); each sampling is a new version.")] = None,
    workspace: WorkspaceOption = None,
    user: UserOption = None,
) -> None:
    """Draw rows from a saved generator into a new dataset version; every row meets the conditions exactly."""
    from flute.synth.conditions import ConditionError
    from flute.synth.io import schema_path
    from flute.synth.workspace.home import WorkspaceError, resolve_user
    from flute.synth.workspace.service import sample_dataset
    from flute.synth.workspace.store import Reference

    if out is not None and _file_mode(workspace):
        _sample_file(Path(model), rows, out, where, seed)
        return
    with _workspace(workspace) as ws:
        try:
            result = sample_dataset(ws, Reference.parse(model), rows, user=resolve_user(user), name=name, where=where, seed=seed)
        except (WorkspaceError, ConditionError, ValueError) as exc:
            _fail(str(exc))
    dataset = result.dataset
    typer.echo(f"dataset {dataset.name}:{dataset.version}: {dataset.rows} rows at {dataset.csv} (schema {dataset.schema}, sha256 {dataset.csv_sha256[:12]}...)")
    if result.condition_probability is not None:
        typer.echo(f"conditions: {where} | model probability {result.condition_probability:.4g} | rows meeting them {result.exact_rate:.1%} (exact conditioning, none rejected)")
    if out is not None:
        shutil.copyfile(dataset.csv, out)
        shutil.copyfile(dataset.schema, schema_path(out))
        typer.echo(f"copied to {out} (schema {schema_path(out)})")


@app.command("evaluate")
def evaluate(
    synthetic: Annotated[str, typer.Argument(help="A dataset NAME[:VERSION] in the workspace, or a synthetic CSV file with its schema JSON next to it.")],
    train_csv: Annotated[Path, typer.Option("--train", help="The real rows the generator was trained on (CSV, same columns).")],
    holdout_csv: Annotated[Path, typer.Option("--holdout", help="Real rows NOT used in training (CSV, same columns).")],
    target: Annotated[str, typer.Option("--target", help="The label column for TSTR.")] = "csPCa",
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")] = False,
    report: Annotated[Path | None, typer.Option("--report", help="Write the HTML report here (a workspace dataset also keeps it next to its CSV).")] = None,
    workspace: WorkspaceOption = None,
    user: UserOption = None,
) -> None:
    """Fidelity, TSTR utility and privacy of a synthetic table, with an HTML report (run where the real rows are)."""
    from flute.synth.schema import SchemaError
    from flute.synth.workspace.home import WorkspaceError, resolve_user
    from flute.synth.workspace.service import evaluate_dataset
    from flute.synth.workspace.store import Reference

    try:
        if Path(synthetic).is_file():
            evaluation, html_path = _evaluate_file(Path(synthetic), train_csv, holdout_csv, target, report)
        else:
            with _workspace(workspace) as ws:
                evaluated = evaluate_dataset(ws, Reference.parse(synthetic), train_csv, holdout_csv, user=resolve_user(user), target=target)
            evaluation, html_path = evaluated.evaluation, evaluated.dataset.report
            if report is not None and html_path is not None:
                html_path = Path(shutil.copyfile(html_path, report))
    except (SchemaError, WorkspaceError, FileNotFoundError) as exc:
        _fail(str(exc))
    if as_json:
        typer.echo(json.dumps(evaluation.to_json(), indent=2))
        return
    _print_evaluation(evaluation)
    if html_path is not None:
        typer.echo(f"report: {html_path}")


@app.command("list")
def list_all(workspace: WorkspaceOption = None, as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")] = False) -> None:
    """Generators, saved generators, dataset versions, jobs and usage of the workspace."""
    from flute.synth.generators import generator, generator_names
    from flute.synth.workspace.jobs import Jobs

    with _workspace(workspace) as ws:
        plugins = [(n, generator(n).description) for n in generator_names()]
        saved, datasets, jobs, usage = ws.saved_generators(), ws.datasets(), Jobs(ws).jobs(), ws.usage()
    if as_json:
        typer.echo(json.dumps({
            "generators": [{"name": n, "description": d} for n, d in plugins],
            "saved_generators": [g.to_json() for g in saved],
            "datasets": [d.to_json() | {"csv": str(d.csv), "report": None if d.report is None else str(d.report)} for d in datasets],
            "jobs": [j.to_json() for j in jobs],
            "usage": [u.to_json() for u in usage],
        }, indent=2))
        return
    typer.echo("generators: " + "; ".join(f"{n} ({d})" for n, d in plugins))
    typer.echo("saved generators:" + ("" if saved else " none"))
    for g in saved:
        typer.echo(f"  {g.name}:{g.version}  {g.generator}  study {g.study}  hubs {', '.join(g.hubs)}  {_privacy(g.epsilon, g.delta)}  by {g.created_by}")
    typer.echo("datasets:" + ("" if datasets else " none"))
    for d in datasets:
        evaluated = f"report {d.report}" if d.report else "not evaluated"
        typer.echo(f"  {d.name}:{d.version}  {d.rows} rows  from {d.generator}  {_privacy(d.epsilon, d.delta)}  {d.csv}  {evaluated}")
    typer.echo("jobs:" + ("" if jobs else " none"))
    for j in jobs:
        result = j.saved_generator or j.error or ""
        typer.echo(f"  {j.id}  {j.user}  {j.generator}  {j.state.value}  {j.progress:.0%}  {j.message}  {result}")
    typer.echo("usage:" + ("" if usage else " none"))
    for u in usage:
        typer.echo(f"  {u.user}: {u.trainings} training(s), {u.rows_generated} rows generated, {u.evaluations} evaluation(s), {u.cpu_seconds:.1f} CPU s")


@app.command("cancel")
def cancel(job: Annotated[str, typer.Argument(help="The job id (see `flute synth list`).")], workspace: WorkspaceOption = None) -> None:
    """Cancel a job: a queued one at once, a running one at its next check (its ledger reservations are refunded)."""
    from flute.synth.workspace.home import WorkspaceError
    from flute.synth.workspace.jobs import Jobs

    with _workspace(workspace) as ws:
        try:
            info = Jobs(ws).cancel(job)
        except WorkspaceError as exc:
            _fail(str(exc))
    typer.echo(f"job {info.id}: {info.state.value}" + (" (cancellation requested)" if info.cancel_requested and not info.state.finished else ""))


@app.command("wait")
def wait(
    job: Annotated[str, typer.Argument(help="The job id.")],
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds to wait at most.")] = 3600.0,
    workspace: WorkspaceOption = None,
) -> None:
    """Wait for a job to finish; exit 1 unless it succeeded."""
    from flute.synth.workspace.home import WorkspaceError
    from flute.synth.workspace.jobs import Jobs

    with _workspace(workspace) as ws:
        try:
            info = Jobs(ws).wait(job, timeout_s=timeout)
        except (WorkspaceError, TimeoutError) as exc:
            _fail(str(exc))
        _report_job(ws, info)


@drafts_app.command("save")
def drafts_save(generator_name: Annotated[str, typer.Argument(help="The generator.")], settings: SetOption = None, workspace: WorkspaceOption = None, user: UserOption = None) -> None:
    """Save hyperparameters (merged into your existing draft) to apply later with `train --from-draft`."""
    from flute.synth.generators import GeneratorError
    from flute.synth.workspace.home import WorkspaceError, resolve_user

    with _workspace(workspace) as ws:
        try:
            draft = ws.save_draft(resolve_user(user), generator_name, _settings(settings))
        except (WorkspaceError, GeneratorError) as exc:
            _fail(str(exc))
    typer.echo(f"draft of {generator_name}: {json.dumps(draft)}")


@drafts_app.command("show")
def drafts_show(generator_name: Annotated[str, typer.Argument(help="The generator.")], workspace: WorkspaceOption = None, user: UserOption = None) -> None:
    """Your draft of a generator next to its defaults."""
    from flute.synth.generators import GeneratorError, generator
    from flute.synth.workspace.home import resolve_user

    with _workspace(workspace) as ws:
        try:
            defaults = generator(generator_name).default_hyperparameters()
        except GeneratorError as exc:
            _fail(str(exc))
        draft = ws.draft(resolve_user(user), generator_name)
    typer.echo(f"defaults: {json.dumps(defaults)}")
    typer.echo(f"draft: {json.dumps(draft) if draft is not None else 'none'}")


@drafts_app.command("reset")
def drafts_reset(generator_name: Annotated[str, typer.Argument(help="The generator.")], workspace: WorkspaceOption = None, user: UserOption = None) -> None:
    """Forget your draft: the generator's defaults apply again."""
    from flute.synth.generators import GeneratorError
    from flute.synth.workspace.home import resolve_user

    with _workspace(workspace) as ws:
        try:
            defaults = ws.reset_draft(resolve_user(user), generator_name)
        except GeneratorError as exc:
            _fail(str(exc))
    typer.echo(f"draft of {generator_name} reset; defaults: {json.dumps(defaults)}")


# -- helpers -------------------------------------------------------------------------------------


@contextmanager
def _workspace(home: Path | None) -> Iterator[SynthWorkspace]:
    """The workspace (created if new), its errors turned into a clear exit."""
    from flute.synth.workspace.home import WorkspaceError, resolve_home
    from flute.synth.workspace.store import SynthWorkspace

    try:
        opened = SynthWorkspace.open(resolve_home(home))
    except WorkspaceError as exc:
        _fail(str(exc))
    with opened:
        yield opened


def _file_mode(workspace: Path | None) -> bool:
    """`--out` without a workspace (no --workspace, no $FLUTE_SYNTH_WORKSPACE): plain files."""
    from flute.synth.workspace.home import HOME_ENV_VAR

    return workspace is None and not os.environ.get(HOME_ENV_VAR)


def _train_to_file(hubs: list[Path], names: tuple[str, ...], study: str, generator_name: str, epsilon: float | None, delta: float, overrides: dict[str, Any], out: Path) -> None:
    from flute.hub.consent import ConsentRefused
    from flute.hub.ledger import LedgerError
    from flute.synth.federated import open_hub_homes
    from flute.synth.generators import GeneratorError, TrainSettings
    from flute.synth.marginal_plugin import NAME as MARGINAL
    from flute.synth.marginal_plugin import PLUGIN as MARGINAL_PLUGIN
    from flute.synth.schema import SchemaError, study_schema

    if generator_name != MARGINAL:
        _fail(f"--out writes a marginal model file; the {generator_name!r} generator is saved in a workspace: pass --workspace DIR instead of --out")
    try:
        with open_hub_homes(hubs, names, study) as opened:
            schema = study_schema(names, [h.name for h in opened])
            model = MARGINAL_PLUGIN.train(opened, schema, TrainSettings(study, epsilon, delta, overrides))
    except (LedgerError, ConsentRefused) as exc:
        typer.echo(f"refused: {exc}", err=True)
        raise typer.Exit(1) from exc
    except (SchemaError, GeneratorError, ValueError, FileNotFoundError) as exc:
        _fail(str(exc))
    out.write_text(model.to_json())
    provenance = model.provenance
    typer.echo(f"model written to {out} | hubs {', '.join(provenance['hubs'])} | DP: {_privacy(provenance['epsilon'], provenance['delta'], provenance['unit_of_privacy'])}")
    typer.echo(f"tree ({provenance['structure']}): " + ", ".join(f"{a}-{b}" for a, b in provenance["tree"]))


def _sample_file(model: Path, rows: int, out: Path, where: str, seed: int | None) -> None:
    import numpy as np

    from flute.synth.conditions import ConditionError, holds, parse_conditions
    from flute.synth.generators import GeneratorError
    from flute.synth.io import write_table
    from flute.synth.marginal_plugin import PLUGIN as MARGINAL_PLUGIN

    try:
        fitted = MARGINAL_PLUGIN.load(model)
        conditions = parse_conditions(where, fitted.schema)
        result = fitted.sample(rows, np.random.default_rng(seed), conditions)
    except (GeneratorError, ConditionError, FileNotFoundError) as exc:
        _fail(str(exc))
    schema_file = write_table(result.frame, fitted.schema, out)
    typer.echo(f"{len(result.frame)} rows written to {out} (schema {schema_file})")
    if conditions:
        exact = float(holds(result.conditions, result.frame).mean())
        described = "; ".join(c.describe() for c in conditions)
        typer.echo(f"conditions: {described} | model probability {result.condition_probability:.4g} | rows meeting them {exact:.1%} (exact conditioning, none rejected)")


def _evaluate_file(synthetic: Path, train_csv: Path, holdout_csv: Path, target: str, report: Path | None) -> tuple[Evaluation, Path | None]:
    from flute.synth.evaluate import evaluate as run_evaluation
    from flute.synth.io import read_table
    from flute.synth.report import ReportInput, render_report

    frame, schema = read_table(synthetic)
    train_frame, _ = read_table(train_csv, schema)
    holdout_frame, _ = read_table(holdout_csv, schema)
    schema.column(target)
    evaluation = run_evaluation(schema, frame, train_frame, holdout_frame, target)
    if report is not None:
        report.write_text(render_report(ReportInput(synthetic.name, {"file": str(synthetic)}, evaluation, schema, frame, train_frame, holdout_frame)), encoding="utf-8")
    return evaluation, report


def _print_evaluation(evaluation: Evaluation) -> None:
    f, u, p = evaluation.fidelity, evaluation.utility, evaluation.privacy
    typer.echo("fidelity: " + ", ".join(f"{name} {value:.3f}" for name, value in f.column_distance.items()) + f" (KS/TV; mean {f.mean_column_distance:.3f}); correlation difference {f.correlation_difference:.3f}")
    typer.echo(f"utility (AUROC on the holdout): TSTR LR {u.tstr_lr:.3f}, GB {u.tstr_gb:.3f} | train on real: LR {u.trtr_lr:.3f}, GB {u.trtr_gb:.3f}")
    typer.echo(f"privacy: DCR ratio train/holdout {p.dcr_ratio:.3f} (>= 0.9 wanted), membership-inference AUC {p.mia_auc:.3f} (<= 0.55 wanted), exact copies {p.exact_copies}")


def _report_job(workspace: SynthWorkspace, info: JobInfo) -> None:
    """Print how a finished job ended; exit 1 unless it succeeded."""
    from flute.synth.workspace.jobs import JobState
    from flute.synth.workspace.store import Reference

    if info.state is not JobState.SUCCEEDED:
        typer.echo(f"job {info.id} {info.state.value}: {info.error}", err=True)
        raise typer.Exit(1)
    saved = workspace.saved_generator(Reference.parse(info.saved_generator or ""))
    typer.echo(f"job {info.id} succeeded: generator saved as {saved.name}:{saved.version} | hubs {', '.join(saved.hubs)} | DP: {_privacy(saved.epsilon, saved.delta, saved.provenance.get('unit_of_privacy'))}")


def _privacy(epsilon: float | None, delta: float | None, unit: str | None = None) -> str:
    if epsilon is None:
        return "none"
    return f"epsilon={epsilon:.6g}, delta={delta:g}" + (f" per {unit}" if unit else "")


def _settings(pairs: list[str] | None) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for pair in pairs or []:
        key, sign, text = pair.partition("=")
        if not sign or not key.strip():
            _fail(f"--set {pair!r}: write KEY=VALUE, e.g. --set selection_share=0.3")
        try:
            values[key.strip()] = json.loads(text)
        except json.JSONDecodeError:
            values[key.strip()] = text
    return values


def _marginal_options(tree: str | None, selection_share: float | None) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if tree is not None:
        options["tree"] = [list(pair) for pair in _tree(tree)]
    if selection_share is not None:
        options["selection_share"] = selection_share
    return options


def _tree(text: str) -> tuple[tuple[str, str], ...]:
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
