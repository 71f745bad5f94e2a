"""`flute hub budget`: the data owner's view and control of the privacy budget ledger
(study protocol 5.2.6: a study's privacy budget never runs out; NF-HUF-1/2).

Thin: parses arguments, calls `flute.hub.ledger`, prints.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from flute.hub.ledger import BudgetStatus, Charge, PrivacyLedger

app = typer.Typer(
    help="Privacy budgets per study x dataset: totals set by the data owner, charges made by releases.",
    invoke_without_command=True,
)

HomeOption = Annotated[
    Path | None, typer.Option("--home", help="Hub home directory (default: $FLUTE_HUB_HOME, else ./flute-hub).")
]


@contextmanager
def _opened_ledger(home: Path | None) -> Iterator[PrivacyLedger]:
    """The hub's ledger; expected failures become one clear line and exit code 2."""
    from flute.hub.home import HubHomeError, resolve_home
    from flute.hub.ledger import LedgerError, PrivacyLedger
    from flute.hub.node import open_hub
    from flute.hub.store import StoreError

    try:
        with open_hub(resolve_home(home)) as hub:
            yield PrivacyLedger(hub.store.engine)
    except (HubHomeError, StoreError, LedgerError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc


@app.callback()
def show(
    context: typer.Context,
    home: HomeOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")] = False,
    recent: Annotated[int, typer.Option("--recent", min=0, help="How many recent charges to list.")] = 20,
) -> None:
    """Show every budget (total, spent, reserved, remaining) and the most recent charges."""
    if context.invoked_subcommand is not None:
        return
    with _opened_ledger(home) as ledger:
        budgets, charges = ledger.budgets(), ledger.recent_charges(recent)
    if as_json:
        payload = {"budgets": [b.to_json() for b in budgets], "recent_charges": [c.to_json() for c in charges]}
        typer.echo(json.dumps(payload, indent=2, default=str))
        return
    if not budgets:
        typer.echo("no privacy budgets set; the data owner sets one with `flute hub budget set STUDY --dataset NAME --epsilon E --delta D`")
        return
    for budget in budgets:
        typer.echo(_budget_line(budget))
    if charges:
        typer.echo("recent charges (newest first; 'reserved' counts as spent until committed or released):")
        for charge in charges:
            typer.echo(_charge_line(charge))


@app.command("set")
def set_budget(
    study: Annotated[str, typer.Argument(help="The study's identifier.")],
    dataset: Annotated[str, typer.Option("--dataset", help="The dataset of this hub the study uses.")],
    epsilon: Annotated[float, typer.Option("--epsilon", help="Total epsilon for this study on this dataset.")],
    delta: Annotated[float, typer.Option("--delta", help="Total delta (well below 1 / number of patients).")],
    home: HomeOption = None,
) -> None:
    """Set (or raise) a study's total privacy budget on one dataset - the data owner's decision."""
    with _opened_ledger(home) as ledger:
        budget = ledger.set_budget(study, dataset, epsilon, delta)
    typer.echo(_budget_line(budget))


@app.command("release")
def release(
    charge_id: Annotated[int, typer.Argument(help="The id of a pending ('reserved') charge, as listed by `flute hub budget`.")],
    home: HomeOption = None,
    yes: Annotated[bool, typer.Option("--yes", help="Confirm that nothing computed under this charge left the hub.")] = False,
) -> None:
    """Refund a reservation whose process died before committing. Only do this when you know its
    result never left the hub: otherwise the privacy it cost is spent."""
    if not yes:
        typer.echo("error: refunding a charge is safe only if its result never left the hub; re-run with --yes to confirm", err=True)
        raise typer.Exit(2)
    with _opened_ledger(home) as ledger:
        reservation = ledger.pending_reservation(charge_id)
        ledger.release(reservation)
        budget = ledger.budget(reservation.study, reservation.dataset)
    typer.echo(f"released charge {charge_id} ({reservation.operation!r}, {reservation.cost.describe()})")
    typer.echo(_budget_line(budget))


def _budget_line(budget: BudgetStatus) -> str:
    return (
        f"{budget.study} x {budget.dataset}: "
        f"epsilon total {budget.epsilon_total:.6g}, spent {budget.epsilon_spent:.6g}, reserved {budget.epsilon_reserved:.6g}, "
        f"remaining {budget.epsilon_remaining:.6g} | "
        f"delta total {budget.delta_total:.3g}, spent {budget.delta_spent:.3g}, reserved {budget.delta_reserved:.3g}, "
        f"remaining {budget.delta_remaining:.3g}"
    )


def _charge_line(charge: Charge) -> str:
    return (
        f"  #{charge.charge_id} {charge.status.value:<9} epsilon {charge.epsilon:.6g}, delta {charge.delta:.3g} "
        f"({charge.unit}-level, {charge.mechanism}) {charge.study} x {charge.dataset}: {charge.operation!r} "
        f"at {charge.reserved_at:%Y-%m-%d %H:%M:%S} by {charge.holder}"
    )
