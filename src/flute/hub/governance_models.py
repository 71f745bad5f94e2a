"""The governance tables (`flute.governance.models`) as part of the hub store's schema: copies
of them registered on the hub's metadata, so the hub's migrations are compared with the
models they must match, governance tables included."""

from __future__ import annotations

from flute.governance.models import GovernanceBase
from flute.hub.models import Base

for _table in GovernanceBase.metadata.sorted_tables:
    if _table.name not in Base.metadata.tables:
        _table.to_metadata(Base.metadata)
