"""The process of one background training job: `python -m flute.synth.workspace.worker HOME JOB`
(started by `Jobs.start`). Everything it does is recorded on the job's row (state, progress,
error); anything it writes to its output lands in the workspace's logs/JOB.log."""

from __future__ import annotations

import sys
from pathlib import Path

from flute.synth.workspace.jobs import Jobs, JobState
from flute.synth.workspace.store import SynthWorkspace


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m flute.synth.workspace.worker WORKSPACE_HOME JOB_ID", file=sys.stderr)
        return 2
    with SynthWorkspace.open(Path(argv[0])) as workspace:
        info = Jobs(workspace).run(argv[1])
    return 0 if info.state is JobState.SUCCEEDED else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
