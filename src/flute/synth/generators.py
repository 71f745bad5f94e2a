"""The generator plugin interface and registry (F-IMSD-17, F-IMSD-15, F-HUF-11..14).

Every synthetic-data generator - the marginal workhorse, the neural ones (diffusion, VAE, GAN) and
any a deployment adds - is one `GeneratorPlugin`: it trains over hubs from a declarative
`TrainSettings` (never arbitrary researcher code, F-PIL-22/23) and returns a `FittedGenerator`
that samples typed rows (exactly under conditions) and saves itself to a directory. Jobs,
versioning, the CLI, the SDK and the benchmark see only this interface, so a new generator plugs
in by registering here or through the `flute.synth_generators` entry-point group.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    import numpy as np

    from flute.synth.conditions import Condition
    from flute.synth.federated import SynthHub
    from flute.synth.marginal import SampleResult
    from flute.synth.schema import TableSchema

ENTRY_POINT_GROUP = "flute.synth_generators"


class GeneratorError(ValueError):
    """An unknown generator, bad hyperparameters, or a saved generator that cannot be loaded."""


class TrainingCancelled(RuntimeError):
    """Training stopped because its job was cancelled; nothing was released after the check."""


def _never_cancelled() -> bool:
    return False


def _ignore_progress(fraction: float, message: str) -> None:
    del fraction, message


@dataclass(frozen=True)
class TrainSettings:
    """What a training request declares. `epsilon` None = non-DP (only where the data owners
    accept it); with `epsilon`, every metered hub is charged before anything is computed.
    `progress(fraction, message)` reports 0..1; `cancelled()` is polled between steps."""

    study: str
    epsilon: float | None = None
    delta: float = 1e-6
    hyperparameters: Mapping[str, Any] = field(default_factory=dict)
    seed: int | None = None
    progress: Callable[[float, str], None] = _ignore_progress
    cancelled: Callable[[], bool] = _never_cancelled

    def check_cancelled(self) -> None:
        if self.cancelled():
            raise TrainingCancelled(f"training for study {self.study!r} was cancelled")


@runtime_checkable
class FittedGenerator(Protocol):
    """A trained generator: sampling is post-processing (no further privacy cost)."""

    @property
    def schema(self) -> TableSchema: ...

    @property
    def provenance(self) -> Mapping[str, Any]:
        """How it was trained: generator, hubs, mode, epsilon, delta, unit of privacy, hyperparameters."""
        ...

    def sample(self, rows: int, rng: np.random.Generator, conditions: Sequence[Condition] = ()) -> SampleResult:
        """Exactly `rows` typed rows, every one meeting `conditions`, or a ConditionError."""
        ...

    def save(self, directory: Path) -> None:
        """Write everything `GeneratorPlugin.load` needs into `directory` (no pickle)."""
        ...


class GeneratorPlugin(Protocol):
    """One kind of generator."""

    name: str
    description: str

    def default_hyperparameters(self) -> dict[str, Any]: ...

    def train(self, hubs: Sequence[SynthHub], schema: TableSchema, settings: TrainSettings) -> FittedGenerator: ...

    def load(self, directory: Path) -> FittedGenerator: ...


_REGISTRY: dict[str, GeneratorPlugin] = {}
_BUILTINS_LOADED = False


def register(plugin: GeneratorPlugin) -> GeneratorPlugin:
    """Add a generator; a second plugin under a taken name is refused (no silent replacement)."""
    if plugin.name in _REGISTRY and _REGISTRY[plugin.name] is not plugin:
        raise GeneratorError(f"a generator named {plugin.name!r} is already registered ({_REGISTRY[plugin.name].description})")
    _REGISTRY[plugin.name] = plugin
    return plugin


def generator(name: str) -> GeneratorPlugin:
    """The plugin called `name`; the error lists the known ones."""
    _load_builtins()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise GeneratorError(f"unknown generator {name!r}; known: {', '.join(sorted(_REGISTRY))}") from None


def generator_names() -> tuple[str, ...]:
    _load_builtins()
    return tuple(sorted(_REGISTRY))


def _load_builtins() -> None:
    """Import the built-in plugins (each registers itself) and the entry-point ones, once."""
    global _BUILTINS_LOADED
    if _BUILTINS_LOADED:
        return
    _BUILTINS_LOADED = True
    from importlib import import_module
    from importlib.metadata import entry_points

    for module in BUILTIN_MODULES:
        import_module(module)
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        register(entry.load())


#: Modules whose import registers a built-in generator (heavy imports such as torch stay inside
#: their train/load/sample functions, so listing generators is fast).
BUILTIN_MODULES: tuple[str, ...] = ("flute.synth.marginal_plugin", "flute.synth.neural.diffusion", "flute.synth.neural.vae", "flute.synth.neural.gan")
