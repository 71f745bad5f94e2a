"""`flute study`: validate a study spec, run a study over hub homes in embedded mode, and search
its hyperparameters.

Thin: parses arguments, calls `flute.engine`, prints. Flower and the evaluation stack are imported
inside the commands, so `flute --help` stays instant.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

    from flute.engine.spec import StudySpec

app = typer.Typer(help="Federated studies: check a study spec, run it across hubs, tune it.", no_args_is_help=True)

SpecArgument = Annotated[Path, typer.Argument(help="Study spec (.json or .toml).", exists=False)]


def _load_spec(path: Path) -> StudySpec:
    from flute.engine.spec import SpecError, StudySpec

    try:
        return StudySpec.load(path)
    except SpecError as exc:
        typer.echo(f"refused: {path}", err=True)
        for reason in exc.reasons:
            typer.echo(f"  - {reason}", err=True)
        raise typer.Exit(1) from exc


@app.command("validate")
def validate(spec_path: SpecArgument) -> None:
    """Check a study spec against the vetted algorithms and options (F-PIL-22/23)."""
    spec = _load_spec(spec_path)
    typer.echo(
        f"valid: {spec.study_id} - {spec.model.name} via {spec.strategy.name} on {', '.join(spec.cohort.variables)}; "
        f"{spec.evaluation.cv_folds}-fold CV, leave-one-hub-out {'on' if spec.evaluation.leave_one_hub_out else 'off'}, "
        f"at least {spec.federation.min_hubs} hubs"
        + (f"; one intercept per hub ({', '.join(spec.preprocessing.hub_intercepts)})" if spec.preprocessing.hub_intercepts else "")
    )


class _RoundDisplay(logging.Handler):
    """Feeds the workflow's per-round log records into a rich progress bar."""

    def __init__(self, progress: Progress, task_id: TaskID) -> None:
        super().__init__(logging.INFO)
        self.progress, self.task_id = progress, task_id

    def emit(self, record: logging.LogRecord) -> None:
        event = getattr(record, "flute_round", None)
        if event is not None:
            self.progress.update(
                self.task_id,
                completed=event.round,
                total=event.max_rounds,
                description=f"{event.task} round {event.round}: loss {event.loss:.5f}, step {event.step_norm:.1e}",
            )


@app.command("run")
def run(
    spec_path: SpecArgument,
    hubs: Annotated[list[Path], typer.Option("--hub", help="A hub home directory; repeat for each hub.")],
    out: Annotated[Path | None, typer.Option("--out", help="Directory for report.html and result.flute.")] = None,
    checkpoint: Annotated[Path | None, typer.Option("--checkpoint", help="Resumable state; an existing file resumes the study.")] = None,
) -> None:
    """Run a study in embedded mode over local hub homes: the same ServerApp and ClientApp as a
    deployment, with every hub's data read from its own store."""
    spec = _load_spec(spec_path)
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn

    from flute.engine.apps import RESULT_FILE, client_app, server_app
    from flute.engine.checkpoint import CheckpointError
    from flute.engine.embedded import HubBinding, run_embedded, study_run_config
    from flute.engine.flower import record_to_bytes
    from flute.engine.validation import NoValidation, validation_report
    from flute.engine.workflow import LOGGER, StudyFailed
    from flute.evaluate import render_terminal, write_html
    from flute.hub.home import HubHomeError, load_config

    console = Console()
    try:
        bindings = [HubBinding(load_config(home).name, home=home) for home in hubs]
    except HubHomeError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    with Progress(TextColumn("{task.description}"), BarColumn(), console=console, transient=True) as progress:
        handler = _RoundDisplay(progress, progress.add_task("census", total=spec.training.rounds))
        previous_level = LOGGER.level
        LOGGER.addHandler(handler)
        LOGGER.setLevel(logging.INFO)
        try:
            result = run_embedded(server_app, client_app, bindings, study_run_config(spec, checkpoint=checkpoint))
        except (StudyFailed, CheckpointError, ValueError) as exc:
            typer.echo(f"error: study {spec.study_id} stopped: {exc}", err=True)
            raise typer.Exit(1) from exc
        finally:
            LOGGER.removeHandler(handler)
            LOGGER.setLevel(previous_level)
    if result.dropped_hubs:
        typer.echo(f"dropped hubs: {', '.join(result.dropped_hubs)}", err=True)
    try:
        report = validation_report(result, mode="embedded")
    except NoValidation as exc:
        report = None
        typer.echo(str(exc))
    if report is not None:
        for renderable in render_terminal(report):
            console.print(renderable)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / RESULT_FILE).write_bytes(record_to_bytes(result.to_record()))
        if report is not None:
            write_html(report, out / "report.html")
        typer.echo(f"wrote {out}")


@app.command("tune")
def tune(
    spec_path: SpecArgument,
    hubs: Annotated[list[Path], typer.Option("--hub", help="A hub home directory; repeat for each hub.")],
) -> None:
    """Search the spec's tuning space (F-HUF-9/10): every trial is a federated cross-validation
    over the hub homes, scored by its pooled CV AUROC; prints each trial and the best options."""
    spec = _load_spec(spec_path)
    from rich.console import Console
    from rich.table import Table

    from flute.engine.apps import client_app, server_app
    from flute.engine.embedded import HubBinding, run_embedded, study_run_config
    from flute.engine.spec import SpecError
    from flute.engine.tuning import TuningError
    from flute.engine.tuning import tune as search
    from flute.engine.workflow import StudyFailed
    from flute.hub.home import HubHomeError, load_config

    try:
        bindings = [HubBinding(load_config(home).name, home=home) for home in hubs]
    except HubHomeError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    try:
        result = search(spec, lambda trial: run_embedded(server_app, client_app, bindings, study_run_config(trial)))
    except SpecError as exc:
        typer.echo("refused: a trial's options are not valid model options", err=True)
        for reason in exc.reasons:
            typer.echo(f"  - {reason}", err=True)
        raise typer.Exit(1) from exc
    except (TuningError, StudyFailed) as exc:
        typer.echo(f"error: tuning of {spec.study_id} stopped: {exc}", err=True)
        raise typer.Exit(1) from exc
    table = Table(title=f"{spec.study_id}: {spec.tuning.method if spec.tuning else ''} search of {spec.model.name}, CV AUROC per trial")
    for column in ("trial", "options", "CV AUROC"):
        table.add_column(column)
    for number, trial in enumerate(result.trials, start=1):
        table.add_row(str(number), ", ".join(f"{name}={value}" for name, value in trial.params.items()), f"{trial.cv_auroc:.4f}")
    Console().print(table)
    best = result.best
    typer.echo(f"best: {', '.join(f'{name}={value}' for name, value in best.params.items())} (CV AUROC {best.cv_auroc:.4f})")
