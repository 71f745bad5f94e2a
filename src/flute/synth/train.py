"""Training the marginal generator over hubs (F-IMSD-13, F-HUF-14): choose the tree, measure its
edges, fit the model at the coordinator.

Tree: either DECLARED in the config (`tree`, pairs of column names: the whole budget goes to
measurement) or SELECTED as the maximum spanning tree over all 2-way marginals, released with
`selection_share` of the budget (`flute.synth.budget`) and scored by their noise-corrected
dependence (`noisy_dependence`). Without DP, the tree is the Chow-Liu tree (mutual information of
exact counts), and the same counts are the measurement.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from flute.privacy.dp.mechanisms import NoisePlan, NoiseSource
from flute.synth.budget import MarginalBudget
from flute.synth.federated import SynthHub, charged, secure_marginal_sum
from flute.synth.marginal import Edge, TreeModel, fit_tree, maximum_spanning_tree, mutual_information, noisy_dependence
from flute.synth.schema import TableSchema

UNIT_OF_PRIVACY = "one patient record (added or removed) at one hub"


@dataclass(frozen=True)
class MarginalConfig:
    """`budget` None = the non-DP mode. `tree` (column-name pairs) declares the structure."""

    study: str
    budget: MarginalBudget | None
    tree: tuple[tuple[str, str], ...] | None = None
    tolerated_colluders: int = 0
    tolerated_dropouts: int = 0


def train_marginal(
    hubs: Sequence[SynthHub], schema: TableSchema, config: MarginalConfig, *, noise: Callable[[], NoiseSource] = NoiseSource.secure
) -> TreeModel:
    """Fit the generator over `hubs`; with a budget, every metered hub is charged the whole
    training's cost first (see `flute.synth.federated.charged`)."""
    if not hubs:
        raise ValueError("training needs at least one hub")
    declared = _declared_edges(schema, config.tree) if config.tree is not None else None
    pairs = [] if declared is not None else list(itertools.combinations(range(len(schema.columns)), 2))
    measured = len(schema.columns) - 1
    plan = NoisePlan.distributed(len(hubs), tolerated_colluders=config.tolerated_colluders, tolerated_dropouts=config.tolerated_dropouts)
    run = uuid.uuid4().hex
    if config.budget is None:
        tables = secure_marginal_sum(hubs, schema, declared or pairs, None, plan, f"synth/{config.study}/{run}/counts")
        edges = declared or maximum_spanning_tree(len(schema.columns), {e: mutual_information(t) for e, t in tables.items()})
        return fit_tree(schema, {e: tables[e] for e in edges}, _provenance(hubs, config, None, edges, schema))
    selection_sigma, measurement_sigma = config.budget.sigmas(len(pairs), measured)
    cost = config.budget.cost(len(pairs), measured)
    operation = f"synthetic data: marginal generator on {len(schema.columns)} columns ({cost.describe()})"
    with charged(hubs, config.study, cost, operation):
        edges = declared
        if edges is None:
            selection = secure_marginal_sum(hubs, schema, pairs, selection_sigma, plan, f"synth/{config.study}/{run}/select", noise)
            edges = maximum_spanning_tree(len(schema.columns), {e: noisy_dependence(t, selection_sigma) for e, t in selection.items()})  # type: ignore[arg-type]
        tables = secure_marginal_sum(hubs, schema, edges, measurement_sigma, plan, f"synth/{config.study}/{run}/measure", noise)
    provenance = _provenance(hubs, config, cost.epsilon, edges, schema) | {"sigma_measurement": measurement_sigma, "noise_plan": plan.describe()}
    return fit_tree(schema, tables, provenance)  # type: ignore[arg-type]


def _declared_edges(schema: TableSchema, tree: Sequence[tuple[str, str]]) -> list[Edge]:
    edges = [tuple(sorted((schema.index(a), schema.index(b)))) for a, b in tree]
    maximum_spanning_tree(len(schema.columns), {edge: 1.0 for edge in edges})  # type: ignore[misc]
    if len(edges) != len(schema.columns) - 1:
        raise ValueError(f"the declared tree {list(tree)} must have exactly {len(schema.columns) - 1} pairs spanning {list(schema.names)}")
    return edges  # type: ignore[return-value]


def _provenance(hubs: Sequence[SynthHub], config: MarginalConfig, epsilon: float | None, edges: Sequence[Edge], schema: TableSchema) -> dict[str, object]:
    names = schema.names
    budget = config.budget
    return {
        "generator": "marginal-tree",
        "study": config.study,
        "hubs": [hub.name for hub in hubs],
        "mode": "non-dp" if budget is None else "dp",
        "epsilon": epsilon,
        "delta": None if budget is None else budget.delta,
        "unit_of_privacy": UNIT_OF_PRIVACY if budget is not None else None,
        "structure": "declared" if config.tree is not None else ("selected-mst-noisy" if budget else "selected-mst-exact"),
        "selection_share": None if budget is None or config.tree is not None else budget.selection_share,
        "tree": [[names[i], names[j]] for i, j in edges],
    }
