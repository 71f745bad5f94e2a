"""The Flower apps of a FLUTE study: `server_app` (the coordinator) and `client_app` (a hub).

Both run unchanged in the in-process engine (`flute.engine.embedded`) and in a deployment
(SuperLink + SuperNodes), configured only through Flower's configs:

run_config (the run's config, seen by the ServerApp and every ClientApp):
    "study-spec"       the StudySpec as JSON (required). Hubs validate it themselves.
    "checkpoint-path"  coordinator-side file for resumable state (optional).
    "out-dir"          coordinator-side directory for result.flute (optional).
node_config (per SuperNode):
    "hub-home"         the hub home directory whose store the ClientApp reads (deployment).
    "hub-name"         optional override of the name the hub reports.
    "memory-source"    in-process engine only: token of an in-memory source of this process.

Handlers translate a message into typed inputs, call the hub step of `flute.engine.hub_steps`
on the hub's own table (F-SRS-5), and translate the result back; a refusal or failure becomes
Flower's error reply.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Final

from flute.cohort.table import StudyTable
from flute.engine import comparators, hub_secagg, hub_steps, pet_steps, stats_steps, tree_handlers
from flute.engine.consent_hook import require_consent
from flute.engine.flower import ClientApp, Context, Grid, Message, RecordDict, ServerApp, record_to_bytes
from flute.engine.hub_identity import ENROLMENT_KEY, parse_enrolment
from flute.engine.pet_records import AdditiveRes, CensusIns, PetMessageKind, RoundAnnouncement, SecAggMessage
from flute.engine.records import EvalIns, StatsIns, TrainIns
from flute.engine.result import StudyResult
from flute.engine.sources import hub_name, open_data_source
from flute.engine.spec import StudySpec
from flute.engine.workflow import Coordinator

SPEC_KEY: Final = "study-spec"
CHECKPOINT_KEY: Final = "checkpoint-path"
OUT_DIR_KEY: Final = "out-dir"
RESULT_FILE: Final = "result.flute"
STATE_RESULT: Final = "flute.study-result"


def spec_from_run_config(run_config: dict[str, object], *, side: str) -> StudySpec:
    text = run_config.get(SPEC_KEY)
    if not isinstance(text, str):
        raise ValueError(f"run config lacks {SPEC_KEY!r} (the study spec as JSON); pass --run-config '{SPEC_KEY}=\"...\"'")
    return StudySpec.from_json(text, source=f"{side} run config {SPEC_KEY}")


# -- coordinator ---------------------------------------------------------------------------

server_app = ServerApp()


@server_app.main()
def coordinate(grid: Grid, context: Context) -> None:
    """Run the study; leave the result in the context state (in-process engine) and, with
    'out-dir', write it to OUT_DIR/result.flute (deployment)."""
    spec = spec_from_run_config(dict(context.run_config), side="coordinator")
    checkpoint = context.run_config.get(CHECKPOINT_KEY)
    enrolled = parse_enrolment(context.run_config.get(ENROLMENT_KEY), where="run config") if spec.pets.mode != "none" else {}
    result = Coordinator(grid, spec, Path(str(checkpoint)) if checkpoint else None, enrolled=enrolled).run()
    record = result.to_record()
    for name, value in record.items():
        context.state[f"{STATE_RESULT}/{name}"] = value
    out_dir = context.run_config.get(OUT_DIR_KEY)
    if out_dir:
        Path(str(out_dir)).mkdir(parents=True, exist_ok=True)
        (Path(str(out_dir)) / RESULT_FILE).write_bytes(record_to_bytes(record))


def result_from_state(state: RecordDict) -> StudyResult:
    """The StudyResult a finished `server_app` left in its context state."""
    prefix = f"{STATE_RESULT}/"
    record = RecordDict({name.removeprefix(prefix): value for name, value in state.items() if name.startswith(prefix)})
    return StudyResult.from_record(record)


# -- hub -----------------------------------------------------------------------------------

client_app = ClientApp()

HubStep = Callable[[StudySpec, StudyTable, RecordDict, Context], RecordDict]


def _on_hub_table(message: Message, context: Context, step: HubStep) -> Message:
    """Validate the spec on the hub's side, read the hub's own table, run one step (for a
    comparator's request, on the comparator's view; `flute.engine.comparators`)."""
    spec = spec_from_run_config(dict(context.run_config), side="hub")
    require_consent(context.node_config, spec, message.metadata.message_type)
    with open_data_source(context.node_config) as source:
        table = source.study_table(spec.cohort.variables, included_only=spec.cohort.included_only)
    hub_steps.check_cohort(spec, table)
    table = hub_steps.with_hub_columns(spec, table, hub_name(context.node_config))
    spec, table = comparators.hub_view(spec, table, message.content)
    return Message(step(spec, table, message.content, context), reply_to=message)


def _summary(spec: StudySpec, table: StudyTable, content: RecordDict, context: Context) -> RecordDict:
    ins, hub = StatsIns.from_record(content), hub_name(context.node_config)
    announcement = RoundAnnouncement.from_record(content)
    if announcement is None:
        pet_steps.require_clear_answers_allowed(spec, "column sums")
        return hub_steps.summarise_columns(spec, table, ins, hub).to_record()
    vector = pet_steps.column_vector(spec, table, ins, announcement, hub, context)
    return hub_secagg.start_round(spec, context, announcement, vector, hub)


def _newton(spec: StudySpec, table: StudyTable, content: RecordDict, context: Context) -> RecordDict:
    ins, announcement = TrainIns.from_record(content), RoundAnnouncement.from_record(content)
    if announcement is None:
        pet_steps.require_clear_answers_allowed(spec, "Newton sums")
        return hub_steps.newton_step(spec, table, ins).to_record()
    return hub_secagg.start_round(spec, context, announcement, pet_steps.newton_vector(spec, table, ins), hub_name(context.node_config))


def _local(spec: StudySpec, table: StudyTable, content: RecordDict, context: Context) -> RecordDict:
    ins, announcement = TrainIns.from_record(content), RoundAnnouncement.from_record(content)
    if announcement is None:
        pet_steps.require_clear_answers_allowed(spec, "a local model")
        return hub_steps.local_fit(spec, table, ins).to_record()
    return hub_secagg.start_round(spec, context, announcement, pet_steps.weighted_fit_vector(spec, table, ins), hub_name(context.node_config))


def _clipped_gradient(spec: StudySpec, table: StudyTable, content: RecordDict, context: Context) -> RecordDict:
    ins, announcement = TrainIns.from_record(content), RoundAnnouncement.from_record(content)
    vector = pet_steps.gradient_vector(spec, table, ins, announcement, context)
    if announcement is None:
        pet_steps.require_clear_answers_allowed(spec, "a gradient sum")
        return AdditiveRes(vector).to_record()
    return hub_secagg.start_round(spec, context, announcement, vector, hub_name(context.node_config))


def _scores(spec: StudySpec, table: StudyTable, content: RecordDict, context: Context) -> RecordDict:
    ins, announcement = EvalIns.from_record(content), RoundAnnouncement.from_record(content)
    if announcement is None:
        pet_steps.require_clear_answers_allowed(spec, "score histograms")
        return hub_steps.score(spec, table, ins).to_record()
    return hub_secagg.start_round(spec, context, announcement, pet_steps.scores_vector(spec, table, ins), hub_name(context.node_config))


def _census(spec: StudySpec, table: StudyTable, content: RecordDict, context: Context) -> RecordDict:
    return pet_steps.census(spec, table, CensusIns.from_record(content), hub_name(context.node_config), context).to_record()


def _secagg_stage(message: Message, context: Context, kind: PetMessageKind) -> Message:
    """Stages 2-5 need no data: only the hub's saved round state."""
    spec_from_run_config(dict(context.run_config), side="hub")
    reply = hub_secagg.continue_round(context, kind, SecAggMessage.from_record(message.content))
    return Message(reply, reply_to=message)


@client_app.query("summary")
def summary(message: Message, context: Context) -> Message:
    return _on_hub_table(message, context, _summary)


@client_app.train("newton")
def newton(message: Message, context: Context) -> Message:
    return _on_hub_table(message, context, _newton)


@client_app.train("local")
def local(message: Message, context: Context) -> Message:
    return _on_hub_table(message, context, _local)


@client_app.evaluate("scores")
def scores(message: Message, context: Context) -> Message:
    return _on_hub_table(message, context, _scores)


@client_app.query("statistics")
def statistics(message: Message, context: Context) -> Message:
    """Descriptive statistics (flute.engine.stats_steps); the request is in the run config."""
    return Message(stats_steps.handle_statistics(message.content, context), reply_to=message)


@client_app.train("clipped_gradient")
def clipped_gradient(message: Message, context: Context) -> Message:
    return _on_hub_table(message, context, _clipped_gradient)


@client_app.query("census")
def census(message: Message, context: Context) -> Message:
    return _on_hub_table(message, context, _census)


@client_app.query("secagg_share")
def secagg_share(message: Message, context: Context) -> Message:
    return _secagg_stage(message, context, PetMessageKind.SECAGG_SHARE)


@client_app.query("secagg_mask")
def secagg_mask(message: Message, context: Context) -> Message:
    return _secagg_stage(message, context, PetMessageKind.SECAGG_MASK)


@client_app.query("secagg_confirm")
def secagg_confirm(message: Message, context: Context) -> Message:
    return _secagg_stage(message, context, PetMessageKind.SECAGG_CONFIRM)


@client_app.query("secagg_unmask")
def secagg_unmask(message: Message, context: Context) -> Message:
    return _secagg_stage(message, context, PetMessageKind.SECAGG_UNMASK)


# Trees, forests, boosting, SVM, MLP and scoring of any registry model (flute.engine.tree_handlers).


@client_app.query("bins")
def bins(message: Message, context: Context) -> Message:
    return _on_hub_table(message, context, tree_handlers.bins)


@client_app.train("histograms")
def histograms(message: Message, context: Context) -> Message:
    return _on_hub_table(message, context, tree_handlers.histograms)


@client_app.train("svm")
def svm(message: Message, context: Context) -> Message:
    return _on_hub_table(message, context, tree_handlers.svm)


@client_app.train("mlp")
def mlp(message: Message, context: Context) -> Message:
    return _on_hub_table(message, context, tree_handlers.mlp)


@client_app.train("platt")
def platt(message: Message, context: Context) -> Message:
    return _on_hub_table(message, context, tree_handlers.platt)


@client_app.evaluate("model")
def model_scores(message: Message, context: Context) -> Message:
    return _on_hub_table(message, context, tree_handlers.model_scores)
