"""What a study produces: trained models (with their global preprocessing) and, per validation
task, each hub's score histogram. Only aggregates: no row ever reaches the coordinator.

`StudyResult.to_record()` / `from_record()` carry a result (or the completed part of one, in a
checkpoint) in Flower's record format: the ServerApp leaves it in its Context state, and
`record_to_bytes` writes it to disk.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Final, Literal

import numpy as np

from flute.engine.comparators import comparator_spec
from flute.engine.flower import Array, ArrayRecord, ConfigRecord, RecordDict
from flute.engine.records import Preprocessing, RecordFormatError
from flute.engine.spec import StudySpec
from flute.evaluate.summary import ScoreSummary, combine
from flute.learn.models import FittedModel, decode
from flute.learn.preprocess import Standardiser

TaskKind = Literal["cv", "loho", "final"]

RESULT: Final = "flute.result"


@dataclass(frozen=True)
class Task:
    """One training task of a study: a CV fold, a held-out hub, or the final all-data model.
    `comparator` (CV folds only) names a comparator of `evaluation.comparators` trained and scored
    in that fold instead of the study's model (`flute.engine.comparators`)."""

    kind: TaskKind
    fold: int = 0
    held_out_hub: str = ""
    comparator: str = ""

    @property
    def key(self) -> str:
        if self.comparator:
            return f"{self.comparator}/cv-fold-{self.fold}"
        if self.kind == "cv":
            return f"cv-fold-{self.fold}"
        if self.kind == "loho":
            return f"loho-{self.held_out_hub}"
        return "final"

    @classmethod
    def from_key(cls, key: str) -> Task:
        if "/" in key:
            comparator, _, fold_key = key.partition("/")
            return replace(cls.from_key(fold_key), comparator=comparator)
        if key == "final":
            return cls("final")
        if key.startswith("cv-fold-") and key.removeprefix("cv-fold-").isdigit():
            return cls("cv", fold=int(key.removeprefix("cv-fold-")))
        if key.startswith("loho-") and len(key) > len("loho-"):
            return cls("loho", held_out_hub=key.removeprefix("loho-"))
        raise RecordFormatError(f"unknown task key {key!r}")


@dataclass(frozen=True)
class TrainedModel:
    """Model parameters with the preprocessing they were trained on. `weights` is the parameter
    vector of `model_name` (`flute.learn.models`): for logistic regression the weights, intercept
    first; `fitted()` decodes it."""

    columns: tuple[str, ...]
    log_columns: tuple[str, ...]
    categories: tuple[str, ...]
    preprocessing: Preprocessing
    weights: np.ndarray
    rounds: int
    converged: bool
    trained_on: tuple[str, ...]
    model_name: str = "logistic_regression"

    @property
    def standardiser(self) -> Standardiser:
        """Raw study variables -> this model's inputs (`columns` are the raw variables)."""
        return Standardiser(self.columns, self.log_columns, self.preprocessing.means, self.preprocessing.scales, self.categories)

    def fitted(self) -> FittedModel:
        return decode(self.model_name, self.weights, len(self.standardiser.inputs))

    def predict(self, features: np.ndarray) -> np.ndarray:
        """P(csPCa) for raw features (columns in `columns` order, NaN = missing)."""
        return self.fitted().predict_risk(self.standardiser.transform(features))


@dataclass(frozen=True)
class SiteScores:
    hub: str
    summary: ScoreSummary


@dataclass(frozen=True)
class TaskOutcome:
    """A completed task: its model and the score histograms of the hubs it was evaluated on."""

    task: Task
    model: TrainedModel
    scores: tuple[SiteScores, ...]


@dataclass(frozen=True)
class HubCount:
    """A hub's eligible rows, csPCa cases and rows missing at least one study variable."""

    hub: str
    n: int
    n_positive: int
    n_incomplete: int


@dataclass(frozen=True)
class StudyResult:
    spec: StudySpec
    hubs: tuple[HubCount, ...]
    outcomes: tuple[TaskOutcome, ...]
    dropped_hubs: tuple[str, ...]

    def of_kind(self, kind: TaskKind) -> tuple[TaskOutcome, ...]:
        """The study model's tasks of that kind (comparator tasks are `comparator_summaries`)."""
        return tuple(outcome for outcome in self.outcomes if outcome.task.kind == kind and not outcome.task.comparator)

    def comparator_summaries(self) -> dict[str, ScoreSummary]:
        """Each comparator's out-of-fold histograms, added over the CV folds and the hubs: the
        same patients as `cv_pooled_summary`."""
        per_comparator: dict[str, list[ScoreSummary]] = {}
        for outcome in self.outcomes:
            if outcome.task.comparator:
                per_comparator.setdefault(outcome.task.comparator, []).extend(site.summary for site in outcome.scores)
        return {name: combine(summaries) for name, summaries in per_comparator.items()}

    @property
    def final_model(self) -> TrainedModel:
        finals = self.of_kind("final")
        if not finals:
            raise LookupError("this result has no final model (the study did not complete)")
        return finals[0].model

    def cv_site_summaries(self) -> dict[str, ScoreSummary]:
        """Each hub's out-of-fold histogram, added over the CV folds."""
        per_site: dict[str, list[ScoreSummary]] = {}
        for outcome in self.of_kind("cv"):
            for site in outcome.scores:
                per_site.setdefault(site.hub, []).append(site.summary)
        return {hub: combine(summaries) for hub, summaries in per_site.items()}

    def cv_pooled_summary(self) -> ScoreSummary:
        return combine(self.cv_site_summaries().values())

    def loho_summaries(self) -> dict[str, ScoreSummary]:
        return {outcome.task.held_out_hub: outcome.scores[0].summary for outcome in self.of_kind("loho") if outcome.scores}

    # -- records ------------------------------------------------------------------------------

    def to_record(self) -> RecordDict:
        record = RecordDict(
            {
                RESULT: ConfigRecord(
                    {
                        "spec": self.spec.to_json(),
                        "hubs": [count.hub for count in self.hubs],
                        "hub-rows": [count.n for count in self.hubs],
                        "hub-positives": [count.n_positive for count in self.hubs],
                        "hub-incomplete": [count.n_incomplete for count in self.hubs],
                        "dropped": list(self.dropped_hubs),
                        "tasks": [outcome.task.key for outcome in self.outcomes],
                    }
                )
            }
        )
        for index, outcome in enumerate(self.outcomes):
            _put_outcome(record, f"{RESULT}.{index}", outcome)
        return record

    @classmethod
    def from_record(cls, record: RecordDict) -> StudyResult:
        if RESULT not in record.config_records:
            raise RecordFormatError(f"record holds no study result ({RESULT!r} missing)")
        head = record.config_records[RESULT]
        spec = StudySpec.from_json(str(head["spec"]), source="stored result")
        hubs = tuple(
            HubCount(str(h), int(n), int(p), int(i))  # type: ignore[call-overload]
            for h, n, p, i in zip(_list(head, "hubs"), _list(head, "hub-rows"), _list(head, "hub-positives"), _list(head, "hub-incomplete"), strict=True)
        )
        outcomes = tuple(
            _get_outcome(record, f"{RESULT}.{index}", Task.from_key(str(key)), spec)
            for index, key in enumerate(_list(head, "tasks"))
        )
        return cls(spec, hubs, outcomes, tuple(str(h) for h in _list(head, "dropped")))


def _list(config: ConfigRecord, key: str) -> list[object]:
    value = config.get(key)
    if not isinstance(value, list):
        raise RecordFormatError(f"{RESULT}.{key}: expected a list, got {type(value).__name__}")
    return value


def _put_outcome(record: RecordDict, prefix: str, outcome: TaskOutcome) -> None:
    model = outcome.model
    record[f"{prefix}.model"] = ArrayRecord(
        {"means": Array(model.preprocessing.means), "scales": Array(model.preprocessing.scales), "weights": Array(model.weights)}
    )
    record[prefix] = ConfigRecord(
        {
            "rounds": model.rounds,
            "converged": model.converged,
            "trained-on": list(model.trained_on),
            "scored-hubs": [site.hub for site in outcome.scores],
        }
    )
    for index, site in enumerate(outcome.scores):
        record[f"{prefix}.scores.{index}"] = ArrayRecord({name: Array(array) for name, array in site.summary.to_arrays().items()})


def _get_outcome(record: RecordDict, prefix: str, task: Task, spec: StudySpec) -> TaskOutcome:
    arrays = record.array_records.get(f"{prefix}.model")
    config = record.config_records.get(prefix)
    if arrays is None or config is None:
        raise RecordFormatError(f"stored result lacks the records of task {task.key} ({prefix})")
    if task.comparator:
        if task.comparator not in spec.evaluation.comparators:
            raise RecordFormatError(f"stored task {task.key} names a comparator the study's spec does not list")
        spec = comparator_spec(spec, task.comparator)  # type: ignore[arg-type]
    model = TrainedModel(
        columns=spec.study_columns,
        log_columns=spec.preprocessing.log_transform,
        categories=spec.preprocessing.categories,
        preprocessing=Preprocessing(arrays["means"].numpy(), arrays["scales"].numpy()),
        weights=arrays["weights"].numpy(),
        rounds=int(config["rounds"]),  # type: ignore[arg-type]
        converged=bool(config["converged"]),
        trained_on=tuple(str(h) for h in _list(config, "trained-on")),
        model_name=spec.model.name,
    )
    scores = tuple(
        SiteScores(
            str(hub),
            ScoreSummary.from_arrays(
                {name: array.numpy() for name, array in record.array_records[f"{prefix}.scores.{index}"].items()}, spec.score_grid()
            ),
        )
        for index, hub in enumerate(_list(config, "scored-hubs"))
    )
    return TaskOutcome(task, model, scores)
