"""`python -m flute.engine.superlink_main ARGS`: Flower's SuperLink behind the loopback guard.

Takes exactly `flower-superlink`'s arguments. Used by `flute.engine.deploy` instead of the
`flower-superlink` command so that the Control and Runtime APIs, which share the Fleet port in
Flower 1.41, are refused to every non-loopback peer (see `loopback_guard`).
"""

from __future__ import annotations

import sys

from flute.engine.flower import serve_superlink
from flute.engine.loopback_guard import RemoteFleetOnly


def main() -> None:
    serve_superlink(sys.argv[1:], RemoteFleetOnly)


if __name__ == "__main__":
    main()
