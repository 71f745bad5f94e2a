"""How a hub's ClientApp finds its own study data, from its node config.

In deployment a SuperNode is started with `--node-config 'hub-home="/srv/flute-hub"'` and the
ClientApp opens that hub's store, exactly as `flute hub` does. Benchmarks and tests may instead
bind an in-memory `StudyDataSource` to a hub: it is registered here under a random token that the
in-process engine puts in that hub's node config (`memory-source`). Tokens exist only inside this
process and only while `registered_sources` is active, so a deployed SuperNode can never be
pointed at anything but a hub home.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from flute.cohort.table import StudyDataSource, StudyTable

HUB_HOME_KEY = "hub-home"
"""node_config key: the hub home directory (deployment and `flute study run`)."""

HUB_NAME_KEY = "hub-name"
"""node_config key (optional): the name a hub reports; defaults to the hub home's configured name."""

MEMORY_SOURCE_KEY = "memory-source"
"""node_config key: token of an in-memory source registered in this process (embedded runs only)."""

_MEMORY_SOURCES: dict[str, StudyDataSource] = {}


class DataSourceError(RuntimeError):
    """The hub's node config does not lead to study data; the message says what is missing."""


@dataclass(frozen=True)
class InMemorySource:
    """A StudyDataSource over a table already in memory (its rows count as included)."""

    table: StudyTable

    def study_table(self, variables: Sequence[str], *, included_only: bool = True) -> StudyTable:
        missing = [name for name in variables if name not in self.table.columns]
        if missing:
            raise DataSourceError(f"in-memory source has no column(s) {missing}; it has {list(self.table.columns)}")
        indices = [self.table.columns.index(name) for name in variables]
        return StudyTable(tuple(variables), self.table.features[:, indices], self.table.labels)


@contextmanager
def registered_sources(sources: Sequence[StudyDataSource]) -> Iterator[list[str]]:
    """Register in-memory sources for the duration of an embedded run; yields their tokens."""
    tokens = [secrets.token_hex(16) for _ in sources]
    _MEMORY_SOURCES.update(zip(tokens, sources))
    try:
        yield tokens
    finally:
        for token in tokens:
            _MEMORY_SOURCES.pop(token, None)


@contextmanager
def open_data_source(node_config: Mapping[str, object]) -> Iterator[StudyDataSource]:
    """The hub's data for one message: a registered in-memory source, or the store of the hub
    home (opened for the message and closed after it, so no connection outlives a task)."""
    token = node_config.get(MEMORY_SOURCE_KEY)
    if token is not None:
        source = _MEMORY_SOURCES.get(str(token))
        if source is None:
            raise DataSourceError(
                f"node config {MEMORY_SOURCE_KEY}={token!r} names no in-memory source of this process; "
                f"a deployed hub must be started with --node-config '{HUB_HOME_KEY}=\"DIR\"'"
            )
        yield source
        return
    home = node_config.get(HUB_HOME_KEY)
    if not isinstance(home, str) or not home:
        raise DataSourceError(f"node config lacks {HUB_HOME_KEY!r}: start the hub with --node-config '{HUB_HOME_KEY}=\"DIR\"'")
    from flute.hub.node import open_hub

    with open_hub(Path(home)) as hub:
        yield hub.store


def hub_name(node_config: Mapping[str, object]) -> str:
    """The name this hub reports: node_config 'hub-name', else the hub home's configured name."""
    name = node_config.get(HUB_NAME_KEY)
    if isinstance(name, str) and name:
        return name
    home = node_config.get(HUB_HOME_KEY)
    if isinstance(home, str) and home:
        from flute.hub.home import load_config

        return load_config(Path(home)).name
    raise DataSourceError(f"node config has neither {HUB_NAME_KEY!r} nor {HUB_HOME_KEY!r}; the hub cannot name itself")
