"""The marginal-based synthetic-data generator (MST-style, McKenna et al. 2021): a tree-shaped
graphical model over the discretised columns, fitted from (noisy) 2-way marginals only
(F-IMSD-1/13, NF-IMSD-4). The workhorse under tight privacy budgets: everything it learns from the
data is a handful of additive count tables, which hubs sum (with DP noise) and nothing else.

From measured edge tables to a distribution (post-processing, no privacy cost):
1. each column's 1-way marginal = the average of the projections of its incident edge tables,
   negative counts clipped to 0 and normalised (consistency across edges);
2. each edge table, clipped to >= 0, is fitted by iterative proportional fitting to both of its
   columns' marginals (non-negative and mutually consistent);
3. rooted at the first column, the tree factorises as P(root) x prod P(child | parent).
Sampling is ancestral, vectorised per column. Conditional sampling (`conditions`) runs one
upward belief-propagation pass over the tree with the conditions' per-code evidence, then samples
from the exact conditional distribution: every row satisfies the conditions, none is rejected.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from flute.synth.conditions import Condition, ConditionError, evidence
from flute.synth.schema import TableSchema

if TYPE_CHECKING:
    import pandas as pd

MODEL_FORMAT = "flute-synth-marginal/1"
IPF_ITERATIONS = 50
#: Added to clipped cells before fitting, so a cell the noise pushed to 0 stays reachable.
CELL_FLOOR = 1e-3

Edge = tuple[int, int]


class ModelError(ValueError):
    """A model file or a fitted tree is not valid."""


@dataclass(frozen=True)
class SampleResult:
    """Rows drawn from the model; `condition_probability` is the model's probability of the
    conditions (what plain rejection sampling would have accepted); every returned row meets them."""

    frame: pd.DataFrame
    conditions: tuple[Condition, ...]
    condition_probability: float


@dataclass(frozen=True)
class TreeModel:
    """P(root) x prod P(child | parent) over the schema's codes; `provenance` states how it was
    trained (privacy guarantee, hubs, structure) and travels with the saved model."""

    schema: TableSchema
    parents: tuple[int, ...]  # -1 for the root
    root_marginal: np.ndarray
    conditionals: tuple[np.ndarray | None, ...]  # [parent code, child code]; None for the root
    provenance: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.parents) != len(self.schema.columns) or list(self.parents).count(-1) != 1:
            raise ModelError(f"a tree over {len(self.schema.columns)} columns needs one parent per column and exactly one root, got {self.parents}")
        self.check_shapes()
        if len(self.order) != len(self.parents):
            raise ModelError(f"parents {self.parents} do not form a tree")

    @property
    def root(self) -> int:
        return self.parents.index(-1)

    @property
    def order(self) -> tuple[int, ...]:
        """Columns parents-first."""
        order, frontier = [], [self.root]
        while frontier:
            node = frontier.pop(0)
            order.append(node)
            frontier += [child for child, parent in enumerate(self.parents) if parent == node]
        return tuple(order)

    def edges(self) -> list[tuple[str, str]]:
        names = self.schema.names
        return [(names[p], names[c]) for c, p in enumerate(self.parents) if p >= 0]

    def sample(self, rows: int, rng: np.random.Generator, conditions: Sequence[Condition] = ()) -> SampleResult:
        """`rows` typed rows; with conditions, drawn from the exact conditional distribution."""
        if rows < 1:
            raise ValueError(f"rows must be >= 1, got {rows}")
        found = evidence(conditions, self.schema)
        beliefs = self._upward(found.weights)
        root_posterior = self.root_marginal * beliefs[self.root]
        probability = float(root_posterior.sum())
        if probability <= 0:
            raise ConditionError(f"the conditions {[c.describe() for c in conditions]} have probability 0 under the model; no row can meet them")
        codes = np.empty((rows, len(self.parents)), dtype=np.int64)
        codes[:, self.root] = _draw(np.cumsum(root_posterior / probability)[None, :], np.zeros(rows, dtype=np.int64), rng)
        for child in self.order[1:]:
            joint = self.conditionals[child] * beliefs[child][None, :]  # type: ignore[index]
            totals = joint.sum(axis=1, keepdims=True)
            cumulative = np.cumsum(joint / np.where(totals > 0, totals, 1.0), axis=1)
            codes[:, child] = _draw(cumulative, codes[:, self.parents[child]], rng)
        return SampleResult(self.schema.decode(codes, rng, found.bounds), tuple(conditions), probability)

    def _upward(self, weights: Sequence[np.ndarray]) -> list[np.ndarray]:
        """beliefs[v] = weights[v] x prod of the children's messages, leaves first."""
        beliefs = [np.asarray(w, dtype=np.float64).copy() for w in weights]
        for child in reversed(self.order[1:]):
            beliefs[self.parents[child]] *= self.conditionals[child] @ beliefs[child]  # type: ignore[operator]
        return beliefs

    def to_json(self) -> str:
        return json.dumps(
            {
                "format": MODEL_FORMAT,
                "schema": json.loads(self.schema.to_json()),
                "parents": list(self.parents),
                "root_marginal": self.root_marginal.tolist(),
                "conditionals": [None if c is None else c.tolist() for c in self.conditionals],
                "provenance": dict(self.provenance),
            }
        )

    @classmethod
    def from_json(cls, text: str, *, source: str = "model") -> TreeModel:
        try:
            data = json.loads(text)
            if data.get("format") != MODEL_FORMAT:
                raise ModelError(f"{source}: expected format {MODEL_FORMAT!r}, got {data.get('format')!r}")
            schema = TableSchema.from_json(json.dumps(data["schema"]), source=source)
            conditionals = tuple(None if c is None else np.asarray(c, dtype=np.float64) for c in data["conditionals"])
            return cls(schema, tuple(data["parents"]), np.asarray(data["root_marginal"], dtype=np.float64), conditionals, data.get("provenance", {}))
        except (KeyError, TypeError, AttributeError, json.JSONDecodeError) as exc:
            raise ModelError(f"{source}: not a FLUTE marginal model ({exc})") from exc

    def check_shapes(self) -> None:
        """Every table matches its columns' code counts (a hand-edited or foreign file)."""
        cards = self.schema.cardinalities
        if self.root_marginal.shape != (cards[self.root],):
            raise ModelError(f"root marginal has shape {self.root_marginal.shape}, column {self.schema.names[self.root]!r} has {cards[self.root]} codes")
        for child, parent in enumerate(self.parents):
            if parent >= 0 and np.shape(self.conditionals[child]) != (cards[parent], cards[child]):
                raise ModelError(f"conditional of {self.schema.names[child]!r} has shape {np.shape(self.conditionals[child])}, expected {(cards[parent], cards[child])}")


def fit_tree(schema: TableSchema, tables: Mapping[Edge, np.ndarray], provenance: Mapping[str, Any]) -> TreeModel:
    """The tree model of measured (possibly noisy) edge count tables [codes of i, codes of j]."""
    columns = len(schema.columns)
    if len(tables) != columns - 1:
        raise ModelError(f"a tree over {columns} columns has {columns - 1} edges, got {len(tables)}")
    marginals = _consistent_marginals(columns, tables)
    fitted = {edge: _ipf(np.clip(table, 0.0, None) + CELL_FLOOR, marginals[edge[0]], marginals[edge[1]]) for edge, table in tables.items()}
    parents = [-1] * columns
    conditionals: list[np.ndarray | None] = [None] * columns
    reached, frontier = {0}, [0]
    while frontier:
        node = frontier.pop(0)
        for (i, j), joint in fitted.items():
            for parent, child, table in ((i, j, joint), (j, i, joint.T)):
                if parent == node and child not in reached:
                    parents[child], conditionals[child] = parent, table / table.sum(axis=1, keepdims=True)
                    reached.add(child)
                    frontier.append(child)
    if len(reached) != columns:
        raise ModelError(f"edges {sorted(tables)} do not connect all {columns} columns")
    return TreeModel(schema, tuple(parents), marginals[0], tuple(conditionals), provenance)


def maximum_spanning_tree(columns: int, weights: Mapping[Edge, float]) -> list[Edge]:
    """Kruskal over the pair weights (mutual information): the best tree-shaped approximation
    of the joint (Chow-Liu)."""
    component = list(range(columns))

    def find(node: int) -> int:
        while component[node] != node:
            component[node] = component[component[node]]
            node = component[node]
        return node

    tree = []
    for (i, j) in sorted(weights, key=lambda edge: (-weights[edge], edge)):
        a, b = find(i), find(j)
        if a != b:
            component[a] = b
            tree.append((i, j))
    if len(tree) != columns - 1:
        raise ModelError(f"pairs {sorted(weights)} do not connect all {columns} columns")
    return tree


def mutual_information(table: np.ndarray) -> float:
    """MI (nats) of a count table, negative (noisy) counts clipped to 0."""
    joint = np.clip(table, 0.0, None)
    total = joint.sum()
    if total <= 0:
        return 0.0
    joint = joint / total
    outer = joint.sum(axis=1, keepdims=True) * joint.sum(axis=0, keepdims=True)
    nonzero = joint > 0
    return float(np.sum(joint[nonzero] * np.log(joint[nonzero] / outer[nonzero])))


def noisy_dependence(table: np.ndarray, sigma: float) -> float:
    """How far a NOISY count table is from independence, noise bias removed: the squared
    residual of the independence fit minus what noise of std `sigma` alone contributes
    (about sigma^2 per residual degree of freedom), over the squared total. Plug-in mutual
    information on noisy tables favours the largest tables (more cells, more noise); this score
    does not, and picks the dependent pairs far more often at small epsilon."""
    total = max(float(table.sum()), 1.0)
    independent = np.outer(table.sum(axis=1), table.sum(axis=0)) / total
    rows, columns = table.shape
    return float((np.sum((table - independent) ** 2) - sigma**2 * (rows - 1) * (columns - 1)) / total**2)


def _consistent_marginals(columns: int, tables: Mapping[Edge, np.ndarray]) -> list[np.ndarray]:
    projections: list[list[np.ndarray]] = [[] for _ in range(columns)]
    for (i, j), table in tables.items():
        projections[i].append(table.sum(axis=1))
        projections[j].append(table.sum(axis=0))
    marginals = []
    for found in projections:
        average = np.clip(np.mean(found, axis=0), 0.0, None) + CELL_FLOOR
        marginals.append(average / average.sum())
    return marginals


def _ipf(table: np.ndarray, rows: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """Rescale a positive table to the given row and column distributions."""
    joint = table / table.sum()
    for _ in range(IPF_ITERATIONS):
        joint *= (rows / joint.sum(axis=1))[:, None]
        joint *= (columns / joint.sum(axis=0))[None, :]
    return joint


def _draw(cumulative: np.ndarray, rows_of: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One categorical draw per row from the cumulative distribution cumulative[rows_of[r]]."""
    picked = cumulative[rows_of]
    uniform = rng.random(len(rows_of))[:, None] * picked[:, -1:]
    return np.minimum((uniform >= picked).sum(axis=1), cumulative.shape[1] - 1)
