"""`python -m flute.engine.supernode_main --idle-poll S ARGS`: Flower's SuperNode, polling faster.

ARGS are exactly `flower-supernode`'s. Used by `flute.engine.deploy` instead of the
`flower-supernode` command so that an idle hub asks the coordinator for work every S seconds
rather than Flower's fixed 3 s (see `flower.serve_supernode`).
"""

from __future__ import annotations

import argparse

from flute.engine.flower import serve_supernode


def main() -> None:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--idle-poll", type=float, required=True)
    known, flower_args = parser.parse_known_args()
    serve_supernode(flower_args, known.idle_poll)


if __name__ == "__main__":
    main()
