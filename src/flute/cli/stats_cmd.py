"""`flute stats`: descriptive statistics of study variables across hubs (F-PIL-16/18, NF-PIL-5),
with the PET of the researcher's choice (F-SRS-4): none, dp (OpenDP at each hub, charged to its
ledger) or he (CKKS aggregation).

Thin: parses arguments, calls `flute.engine.stats_workflow` over the embedded engine, prints.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from flute.engine.stats_workflow import StatisticsResult
    from flute.privacy.dp_stats import VariableEstimate

app = typer.Typer(help="Descriptive statistics across hubs: counts, means, variances, histograms, quantiles.", no_args_is_help=True)


@app.command("run")
def run(
    hub: Annotated[list[Path], typer.Option("--hub", help="A hub home (repeat for each hub).")],
    spec: Annotated[Path | None, typer.Option("--spec", help="A study spec: its study id, cohort variables and pets.statistics are the defaults.")] = None,
    study: Annotated[str | None, typer.Option("--study", help="The study whose privacy budget pays (at each hub: study x the hub's name as dataset).")] = None,
    variables: Annotated[str | None, typer.Option("--variables", help="Comma-separated study variables, e.g. psa,pirads.")] = None,
    kind: Annotated[str, typer.Option("--kind", help="count | mean | variance | histogram | quantiles.")] = "mean",
    pet: Annotated[str | None, typer.Option("--pet", help="none | dp | he (default: the spec's pets.statistics, else dp).")] = None,
    epsilon: Annotated[float | None, typer.Option("--epsilon", help="Epsilon each hub spends (pet dp only).")] = None,
    min_hubs: Annotated[int, typer.Option("--min-hubs", min=1, help="Fewest hubs that must answer.")] = 1,
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")] = False,
) -> None:
    """Run one statistics query over hub homes in embedded mode; print per-hub and pooled results."""
    from flute.engine.embedded import HubBinding
    from flute.engine.spec import SpecError
    from flute.engine.stats_records import StatisticsRequest
    from flute.engine.stats_workflow import StatisticsFailed, run_statistics_embedded
    from flute.hub.home import HubHomeError, load_config
    from flute.privacy.dp_stats import StatisticsQueryError

    try:
        study, names, pet = _choices(spec, study, variables, pet)
        request = StatisticsRequest(study, names, kind, pet, epsilon, min_hubs=min_hubs)  # type: ignore[arg-type]
        bindings = [HubBinding(load_config(home).name, home=home) for home in hub]
        result = run_statistics_embedded(request, bindings)
    except (StatisticsQueryError, HubHomeError, SpecError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    except StatisticsFailed as exc:
        typer.echo(f"failed: {exc}", err=True)
        raise typer.Exit(1) from exc
    if as_json:
        typer.echo(json.dumps(result.to_json(), indent=2))
        return
    _print(result)


def _choices(spec_path: Path | None, study: str | None, variables: str | None, pet: str | None) -> tuple[str, tuple[str, ...], str]:
    """Study, variables and PET from the options, defaulting to the study spec's (F-SRS-4: the
    study chooses its statistics PET); an option that contradicts the spec is refused."""
    from flute.engine.spec import StudySpec
    from flute.privacy.dp_stats import StatisticsQueryError

    names = tuple(name.strip() for name in variables.split(",") if name.strip()) if variables else None
    if spec_path is None:
        if study is None or names is None:
            raise StatisticsQueryError("pass --study and --variables, or --spec with a study spec")
        return study, names, pet or "dp"
    spec = StudySpec.load(spec_path)
    if study is not None and study != spec.study_id:
        raise StatisticsQueryError(f"--study {study!r} contradicts the spec's study_id {spec.study_id!r}; leave one out")
    if pet is not None and pet != spec.pets.statistics:
        raise StatisticsQueryError(f"--pet {pet!r} contradicts the spec's pets.statistics {spec.pets.statistics!r}; the study chose it")
    return spec.study_id, names or spec.cohort.variables, spec.pets.statistics


def _print(result: StatisticsResult) -> None:
    request = result.request
    typer.echo(f"{request.kind} of {', '.join(request.variables)} | study {request.study} | PET {request.pet}")
    typer.echo(f"privacy: {result.guarantee()}")
    for hub in result.hubs:
        cost = f" | charged epsilon={hub.cost.epsilon:.6g}, delta={hub.cost.delta:g} per {hub.cost.unit}" if hub.cost else ""
        typer.echo(f"\nhub {hub.hub} (min cell size {hub.min_cell_size}){cost}")
        if not hub.estimates:
            typer.echo("  (encrypted: this hub's sums are seen by no one)")
        for estimate in hub.estimates:
            typer.echo(_line(estimate))
    typer.echo(f"\npooled over {len(result.hubs)} hub(s)")
    for estimate in result.pooled:
        typer.echo(_line(estimate))
    for name, reason in result.failures:
        typer.echo(f"\nnot included: {name}: {reason}")


def _number(value: float | None, digits: int = 4) -> str:
    return "suppressed" if value is None else f"{value:.{digits}g}"


def _line(estimate: VariableEstimate) -> str:
    parts = []
    if estimate.n is not None or "n" in estimate.suppressed:
        parts.append(f"n {_number(estimate.n, 6)}")
    if estimate.mean is not None:
        parts.append(f"mean {_number(estimate.mean)}")
    if estimate.variance is not None:
        parts.append(f"variance {_number(estimate.variance)}")
    if estimate.histogram:
        parts.append("bins " + ", ".join(f"{label}: {_number(count, 6)}" for label, count in estimate.histogram))
    if estimate.quantiles:
        parts.append("quantiles " + ", ".join(f"q{level:g} {value:.4g}" for level, value in estimate.quantiles))
    if "grid" in estimate.suppressed:
        parts.append("quantiles suppressed")
    flags = f"  [suppressed: {', '.join(estimate.suppressed)}]" if estimate.suppressed else ""
    return f"  {estimate.variable}: " + ("; ".join(parts) or "-") + flags
