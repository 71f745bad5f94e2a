"""The coordinator workflow of a study, driven over any Flower `Grid` (in-process or deployed).

1. Census: every hub reports its name and cohort counts (hubs below the study's minimum refuse).
2. Tasks: one per CV fold, one per held-out hub (leave-one-hub-out), then the final model. Each
   task runs federated preprocessing (global means/scales from additive column sums over the
   training rows only), federated training rounds (`flute.learn`), and federated evaluation (each
   hub returns a histogram of its held-out risks; `flute.evaluate` computes metrics from sums).
3. Faults: a hub that errs or does not answer is asked again `federation.retries` times, then
   dropped for the rest of the study; while at least `federation.min_hubs` answer the study goes
   on, otherwise it stops with `TooFewHubs` after writing a checkpoint it can resume from.

Replies are always aggregated in hub-name order, so a seeded study repeats bit for bit.
"""

from __future__ import annotations

import copy
import logging
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from enum import Enum
from typing import Mapping, Sequence

import numpy as np

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from flute.engine.additive import INTEGER_ENCODING, ClippedGradientLayout, ColumnSumsLayout, NewtonLayout, ScoresLayout, WeightedFitLayout
from flute.engine.comparators import ComparatorPlan, comparator_plan, tagged
from flute.engine.checkpoint import Checkpoint, CheckpointError, TaskProgress
from flute.engine.flower import Grid, Message, RecordDict
from flute.engine.records import (
    EvalIns,
    EvalRes,
    FitRes,
    MessageKind,
    NewtonRes,
    Preprocessing,
    RowSelection,
    StatsIns,
    StatsRes,
    TrainIns,
)
from flute.engine.hub_privacy import DpColumnLayout
from flute.engine.hub_secagg import float_encoding
from flute.engine.pet_records import AdditiveRes, CensusIns, CensusRes, PetMessageKind, RunTag
from flute.engine.result import HubCount, SiteScores, StudyResult, Task, TaskOutcome, TrainedModel
from flute.engine.secure_sum import SecureSumFailed, SecureSummer
from flute.engine.spec import ClippedGradientSpec, FedAdamSpec, LogisticRegressionSpec, NewtonSpec, StudySpec
from flute.engine.tree_workflow import train_model_task
from flute.learn.aggregation import Aggregator, AveragingAggregator, FedAdamAggregator, LocalStep, NewtonAggregator
from flute.learn.clipped_gradient import ClippedGradientAggregator, ClippedGradientSums
from flute.learn.logistic import LocalFit, LogisticObjective, NewtonSums, RoundOutcome, balanced_class_weights, zero_weights
from flute.learn.preprocess import ColumnSums, Standardiser
from flute.learn.training import run_rounds

LOGGER = logging.getLogger(__name__)


SECURE_SUM_SITE = "all hubs (secure sum)"
"""Under secure aggregation the evaluation histograms exist only as their sum over the hubs."""


class StudyFailed(RuntimeError):
    """The study cannot go on; the message says why. `checkpoint` (if the run had a checkpoint
    path) holds the completed tasks and the last global weights and round of the task in progress;
    run the study again with the same spec and checkpoint to resume."""

    def __init__(self, message: str, checkpoint: Path | None = None) -> None:
        self.checkpoint = checkpoint
        suffix = f"; resume from checkpoint {checkpoint}" if checkpoint is not None else ""
        super().__init__(message + suffix)


class TooFewHubs(StudyFailed):
    """Fewer hubs answered than the study requires (after retries)."""


class RuntimeBudgetExceeded(StudyFailed):
    """The study ran longer than its resources.max_runtime_s (F-PIL-14)."""


@dataclass(frozen=True)
class RoundEvent:
    """Progress of a training task, logged on this module's logger as `extra={"flute_round": ...}`
    so a CLI can display it without the workflow printing anything."""

    task: str
    round: int
    max_rounds: int
    loss: float
    step_norm: float


def aggregator_for(spec: StudySpec) -> Aggregator:
    if isinstance(spec.strategy, NewtonSpec):
        return NewtonAggregator()
    if isinstance(spec.strategy, FedAdamSpec):
        s = spec.strategy
        return FedAdamAggregator(s.server_learning_rate, s.beta1, s.beta2, s.tau)
    if isinstance(spec.strategy, ClippedGradientSpec):
        return ClippedGradientAggregator(spec.training.learning_rate, curvature_scaled=spec.strategy.step == "curvature")
    return AveragingAggregator()  # fedavg, fedprox (the proximal term is the hubs' side)


def planned_tasks(spec: StudySpec, hubs: Sequence[str]) -> list[Task]:
    tasks = [Task("cv", fold=fold) for fold in range(spec.evaluation.cv_folds)]
    tasks += [Task("cv", fold=fold, comparator=name) for name in spec.evaluation.comparators for fold in range(spec.evaluation.cv_folds)]
    if spec.evaluation.leave_one_hub_out and len(hubs) > 1:
        tasks += [Task("loho", held_out_hub=hub) for hub in hubs]
    return tasks + [Task("final")]


@dataclass
class _Federation:
    """The live hubs and the messaging with retries and dropouts."""

    grid: Grid
    spec: StudySpec
    checkpoint_path: Path | None
    deadline: float
    names: dict[int, str] = field(default_factory=dict)
    dropped: list[str] = field(default_factory=list)

    def ask(self, kind: Enum, payloads: Mapping[int, RecordDict], group: str, *, required: int) -> dict[int, RecordDict]:
        """Send each hub its payload; retry the silent or failing ones; drop those that never
        answer. Returns the answers keyed by node id in hub-name order."""
        if time.monotonic() > self.deadline:
            raise RuntimeBudgetExceeded(
                f"{group}: the study exceeded resources.max_runtime_s = {self.spec.resources.max_runtime_s:g}s", self.checkpoint_path
            )
        pending = dict(payloads)
        answers: dict[int, RecordDict] = {}
        failures: dict[int, str] = {}
        for _attempt in range(self.spec.federation.retries + 1):
            messages = [Message(content, node, kind.value, group_id=group) for node, content in pending.items()]
            for reply in self.grid.send_and_receive(messages, timeout=self.spec.federation.timeout_s):
                node = reply.metadata.src_node_id
                if node not in pending:
                    continue
                if reply.has_error():
                    failures[node] = reply.error.reason or f"error code {reply.error.code}"
                else:
                    answers[node] = reply.content
                    del pending[node]
            if not pending:
                break
        for node in pending:
            name = self.names.get(node, f"node {node}")
            reason = failures.get(node, f"no answer within {self.spec.federation.timeout_s}s")
            LOGGER.warning("hub %s dropped after %d attempt(s) at %s: %s", name, self.spec.federation.retries + 1, group, reason)
            self.names.pop(node, None)
            self.dropped.append(name)
        if len(answers) < required:
            raise TooFewHubs(
                f"{group}: {len(answers)} hub(s) answered {kind.value}, the study needs at least {required} "
                f"(dropped: {', '.join(self.dropped) or 'none'})",
                self.checkpoint_path,
            )
        return dict(sorted(answers.items(), key=lambda item: self.names.get(item[0], "")))


class Coordinator:
    """Runs a StudySpec over a Grid; `run()` returns the StudyResult.

    With pets.mode 'secagg' / 'secagg_dp' every additive answer is securely aggregated
    (`enrolled`: hub name -> enrolled Ed25519 identity key) and the census is `query.census`;
    each run has a random nonce that binds its rounds and the hubs' privacy charges."""

    def __init__(
        self, grid: Grid, spec: StudySpec, checkpoint_path: Path | None = None, *, enrolled: Mapping[str, Ed25519PublicKey] | None = None
    ) -> None:
        self.spec = spec
        self.federation = _Federation(grid, spec, checkpoint_path, time.monotonic() + spec.resources.max_runtime_s)
        self.checkpoint_path = checkpoint_path
        self.aggregator = aggregator_for(spec)
        self.run_nonce = secrets.token_hex(8)
        self.secure: SecureSummer | None = None
        self.comparator: ComparatorPlan | None = None
        self._study_preprocessing: tuple[Preprocessing, tuple[float, float]] | None = None
        self.released_outcomes: tuple[int, int] | None = None
        """(csPCa rows, rows) of the latest preprocessing release (noisy in a DP study, so any
        later use is post-processing): a DP boosting study starts from their log-odds."""
        if spec.pets.secure_aggregation is not None:
            ask = lambda kind, payloads, group, required: self.federation.ask(kind, payloads, group, required=required)  # noqa: E731
            self.secure = SecureSummer(spec, self.run_nonce, dict(enrolled or {}), ask)

    # -- the study ----------------------------------------------------------------------------

    def run(self) -> StudyResult:
        LOGGER.info("study %s, run %s: PETs %s", self.spec.study_id, self.run_nonce, self.spec.pets.mode)
        resume = self._load_checkpoint()
        counts = self._census()
        done = {outcome.task.key: outcome for outcome in resume.completed.outcomes} if resume else {}
        outcomes: list[TaskOutcome] = []
        for task in planned_tasks(self.spec, [count.hub for count in counts]):
            if task.key in done:
                outcomes.append(done[task.key])
                continue
            if task.kind == "loho" and task.held_out_hub not in self.federation.names.values():
                LOGGER.warning("skipping %s: that hub is no longer part of the study", task.key)
                continue
            progress = resume.in_progress if resume and resume.in_progress and resume.in_progress.task == task else None
            partial = StudyResult(self.spec, counts, tuple(outcomes), tuple(self.federation.dropped))
            outcomes.append(self._run_task(task, progress, partial))
        return StudyResult(self.spec, counts, tuple(outcomes), tuple(self.federation.dropped))

    def _load_checkpoint(self) -> Checkpoint | None:
        if self.checkpoint_path is None or not self.checkpoint_path.exists():
            return None
        checkpoint = Checkpoint.load(self.checkpoint_path)
        if checkpoint.completed.spec != self.spec:
            raise CheckpointError(f"{self.checkpoint_path} belongs to a different study spec; use a new checkpoint path")
        return checkpoint

    def _census(self) -> tuple[HubCount, ...]:
        nodes = sorted(self.federation.grid.get_node_ids())
        required = self.spec.federation.min_hubs
        if self.secure is None:
            payload = StatsIns(RowSelection()).to_record()
            answers = self.federation.ask(MessageKind.SUMMARY, {node: payload for node in nodes}, "census", required=required)
            stats = [StatsRes.from_record(content) for content in answers.values()]
            replies = {node: CensusRes(r.hub, r.sums.n_rows, r.n_positive, r.sums.n_incomplete) for node, r in zip(answers, stats)}
        else:
            payload = CensusIns(RunTag(self.run_nonce)).to_record()
            answers = self.federation.ask(PetMessageKind.CENSUS, {node: payload for node in nodes}, "census", required=required)
            replies = {node: CensusRes.from_record(content) for node, content in answers.items()}
        names = [reply.hub for reply in replies.values()]
        if len(set(names)) != len(names):
            raise StudyFailed(f"hubs must have distinct names, got {sorted(names)}")
        self.federation.names = {node: reply.hub for node, reply in replies.items()}
        counts = sorted((HubCount(r.hub, r.n_rows, r.n_positive, r.n_incomplete) for r in replies.values()), key=lambda c: c.hub)
        return tuple(counts)

    def _secure_total(self, kind: Enum, content: RecordDict, nodes: list[int], group: str, *, length: int, integer: bool = False) -> np.ndarray:
        if self.secure is None:
            raise StudyFailed(f"{group}: secure aggregation requested but the study runs with pets.mode {self.spec.pets.mode!r}")
        encoding = INTEGER_ENCODING if integer else float_encoding(self.spec)
        try:
            named = {node: self.federation.names[node] for node in nodes}
            return self.secure.total(kind, content, named, group, length=length, encoding=encoding).total
        except SecureSumFailed as exc:
            raise StudyFailed(str(exc), self.checkpoint_path) from exc

    def _for_comparator(self, plan: ComparatorPlan) -> Coordinator:
        """A coordinator of one comparator's tasks: this study's federation, secure summer and run
        nonce with the comparator's derived spec and aggregator; every request it sends carries
        the comparator's tag, so hubs answer on the comparator's view (`flute.engine.comparators`).
        Its tasks are checkpointed when completed, by this coordinator."""
        child = copy.copy(self)
        child.spec, child.aggregator, child.comparator = plan.spec, plan.aggregator, plan
        child.checkpoint_path, child._study_preprocessing = None, None
        return child

    def _request(self, record: RecordDict) -> RecordDict:
        return record if self.comparator is None else tagged(record, self.comparator.name)

    # -- one task -----------------------------------------------------------------------------

    def _run_task(self, task: Task, progress: TaskProgress | None, completed: StudyResult) -> TaskOutcome:
        if task.comparator and self.comparator is None:
            child = self._for_comparator(comparator_plan(self.spec, task.comparator))  # type: ignore[arg-type]
            return self._checkpointed(child._run_task(task, None, completed), completed)
        train_rows, score_rows = self._rows(task)
        if not isinstance(self.spec.model, LogisticRegressionSpec):
            return self._scored(task, train_model_task(self, task, train_rows), score_rows, completed)
        trainers = self._nodes(exclude=task.held_out_hub)
        required = self._required(task)
        if progress is None:
            preprocessing, class_weights = self._task_preprocessing(task, trainers, train_rows, required)
            weights, state, start = self._start_weights(), None, 0
        else:
            preprocessing, class_weights = progress.preprocessing, progress.class_weights
            weights, state, start = progress.weights, progress.optimiser_state, progress.round
        objective = LogisticObjective(self.spec.model.l2, class_weights)

        def local_results(round_number: int, current: np.ndarray) -> list[NewtonSums] | list[LocalFit] | list[ClippedGradientSums]:
            ins = self._request(TrainIns(round_number, current, train_rows, preprocessing, class_weights).to_record())
            nodes = self._nodes(exclude=task.held_out_hub)
            group = f"{task.key}/round-{round_number}"
            if self.secure is not None:
                return self._secure_local_results(ins, nodes, group, current.shape[0])
            if self.aggregator.local_step is LocalStep.CLIPPED_GRADIENT:
                answers = self.federation.ask(PetMessageKind.CLIPPED_GRADIENT, {n: ins for n in nodes}, group, required=required)
                total = sum(AdditiveRes.from_record(content).vector for content in answers.values())
                return [ClippedGradientLayout(current.shape[0]).decode(np.asarray(total))]
            if self.aggregator.local_step is LocalStep.NEWTON:
                answers = self.federation.ask(MessageKind.NEWTON, {n: ins for n in nodes}, group, required=required)
                return [NewtonRes.from_record(content).sums for content in answers.values()]
            answers = self.federation.ask(MessageKind.LOCAL_FIT, {n: ins for n in nodes}, group, required=required)
            return [FitRes.from_record(content).fit for content in answers.values()]

        def on_round(round_number: int, outcome: RoundOutcome, optimiser_state: dict[str, np.ndarray]) -> None:
            if self.checkpoint_path is not None:
                snapshot = TaskProgress(task, round_number, outcome.weights, optimiser_state, preprocessing, class_weights)
                Checkpoint(completed, snapshot).save(self.checkpoint_path)
            event = RoundEvent(task.key, round_number, self.spec.training.rounds, outcome.loss, outcome.step_norm)
            LOGGER.info("%s round %d: loss %.6f, step %.2e", task.key, round_number, outcome.loss, outcome.step_norm, extra={"flute_round": event})

        if self.checkpoint_path is not None and progress is None:
            Checkpoint(completed, TaskProgress(task, 0, weights, {}, preprocessing, class_weights)).save(self.checkpoint_path)
        trace = run_rounds(
            self.aggregator,
            objective,
            weights,
            local_results,
            max_rounds=self.spec.training.rounds,
            tolerance=self.spec.training.tolerance,
            state=state,
            start_round=start,
            on_round=on_round,
        )
        model = TrainedModel(
            columns=self.spec.study_columns,
            log_columns=self.spec.preprocessing.log_transform,
            categories=self.spec.preprocessing.categories,
            preprocessing=preprocessing,
            weights=trace.weights,
            rounds=trace.rounds,
            converged=trace.converged,
            trained_on=tuple(self.federation.names[n] for n in self._nodes(exclude=task.held_out_hub)),
        )
        return self._scored(task, model, score_rows, completed)

    def _start_weights(self) -> np.ndarray:
        return zero_weights(len(self.spec.model_inputs)) if self.comparator is None else self.comparator.start.copy()

    def _scored(self, task: Task, model: TrainedModel, score_rows: RowSelection, completed: StudyResult) -> TaskOutcome:
        """The task's outcome with its evaluation; checkpointed as completed."""
        return self._checkpointed(TaskOutcome(task, model, self._score(task, model, score_rows)), completed)

    def _checkpointed(self, outcome: TaskOutcome, completed: StudyResult) -> TaskOutcome:
        if self.checkpoint_path is not None:
            finished = StudyResult(self.spec, completed.hubs, completed.outcomes + (outcome,), tuple(self.federation.dropped))
            Checkpoint(finished, None).save(self.checkpoint_path)
        return outcome

    def _secure_local_results(
        self, ins: RecordDict, nodes: list[int], group: str, n_weights: int
    ) -> list[NewtonSums] | list[LocalFit] | list[ClippedGradientSums]:
        """One round's summed answer, securely aggregated: one 'result' standing for all hubs."""
        step = self.aggregator.local_step
        if step is LocalStep.NEWTON:
            newton = NewtonLayout(n_weights)
            return [newton.decode(self._secure_total(MessageKind.NEWTON, ins, nodes, group, length=newton.length))]
        if step is LocalStep.CLIPPED_GRADIENT:
            gradient = ClippedGradientLayout(n_weights)
            return [gradient.decode(self._secure_total(PetMessageKind.CLIPPED_GRADIENT, ins, nodes, group, length=gradient.length))]
        fits = WeightedFitLayout(n_weights)
        return [fits.decode(self._secure_total(MessageKind.LOCAL_FIT, ins, nodes, group, length=fits.length))]

    def _rows(self, task: Task) -> tuple[RowSelection, RowSelection]:
        if task.kind != "cv":
            return RowSelection(), RowSelection()
        k, seed = self.spec.evaluation.cv_folds, self.spec.seed
        return RowSelection("train", k, task.fold, seed), RowSelection("held_out", k, task.fold, seed)

    def _nodes(self, *, exclude: str = "") -> list[int]:
        return sorted((node for node, name in self.federation.names.items() if name != exclude), key=lambda n: self.federation.names[n])

    def _required(self, task: Task) -> int:
        """min_hubs, one less when a hub is held out (leave-one-hub-out trains on the others)."""
        return max(1, self.spec.federation.min_hubs - (1 if task.kind == "loho" else 0))

    def _task_preprocessing(self, task: Task, nodes: list[int], rows: RowSelection, required: int) -> tuple[Preprocessing, tuple[float, float]]:
        """From the task's training rows; in a DP study once, from all rows, reused by every task:
        one DP release instead of one per task (standardisation only reparametrises the model,
        so the budget is better spent on training; CV folds then share the study's means and
        scales, a deliberate, documented use of held-out rows in a noisy nuisance parameter)."""
        if self.spec.pets.dp is None:
            return self._preprocess(f"{task.key}/preprocessing", nodes, rows, required)
        if self._study_preprocessing is None:
            self._study_preprocessing = self._preprocess("study/preprocessing", self._nodes(), RowSelection(), required)
        return self._study_preprocessing

    def _preprocess(self, group: str, nodes: list[int], rows: RowSelection, required: int) -> tuple[Preprocessing, tuple[float, float]]:
        payload = self._request(StatsIns(rows).to_record())
        if self.secure is None:
            answers = self.federation.ask(MessageKind.SUMMARY, {n: payload for n in nodes}, group, required=required)
            replies = [StatsRes.from_record(content) for content in answers.values()]
            total: ColumnSums = replies[0].sums
            for reply in replies[1:]:
                total = total + reply.sums
            n_positive = sum(r.n_positive for r in replies)
        else:
            layout = DpColumnLayout(self.spec) if self.spec.pets.dp is not None else ColumnSumsLayout(len(self.spec.model_inputs))
            total, n_positive = layout.decode(self._secure_total(MessageKind.SUMMARY, payload, nodes, group, length=layout.length))
        prep = self.spec.preprocessing
        standardiser = Standardiser.from_sums(
            self.spec.study_columns, prep.log_transform, total, standardise=prep.standardise, categories=prep.categories, unscaled=prep.hub_columns
        )
        self.released_outcomes = (n_positive, total.n_rows)
        class_weights = (1.0, 1.0)
        if self.spec.model.class_weight == "balanced":
            class_weights = balanced_class_weights(n_positive, total.n_rows)
        return Preprocessing(standardiser.means, standardiser.scales), class_weights

    def _score(self, task: Task, model: TrainedModel, rows: RowSelection) -> tuple[SiteScores, ...]:
        if task.kind == "final":
            return ()
        targets = [n for n, name in self.federation.names.items() if task.kind == "cv" or name == task.held_out_hub]
        payload = self._request(EvalIns(model.weights, rows, model.preprocessing).to_record())
        # Logistic weights are scored by `evaluate.scores`; any model's parameter vector by `evaluate.model`.
        kind = MessageKind.SCORES if isinstance(self.spec.model, LogisticRegressionSpec) else MessageKind.MODEL_SCORES
        if self.secure is not None:
            layout, nodes = ScoresLayout(self.spec.score_grid()), self._nodes()
            total = self._secure_total(kind, payload, nodes, f"{task.key}/evaluation", length=layout.length, integer=True)
            return (SiteScores(SECURE_SUM_SITE, layout.decode(total)),)
        answers = self.federation.ask(kind, {n: payload for n in targets}, f"{task.key}/evaluation", required=1)
        grid = self.spec.score_grid()
        return tuple(SiteScores(self.federation.names[n], EvalRes.from_record(content, grid).summary) for n, content in answers.items())
