#!/usr/bin/env bash
# The whole test suite, as `make test` and CI run it.
# Installs what tests need from the project's own scripts (PostgreSQL, Node packages),
# then runs pytest including the slow tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-test-services.sh
export FLWR_TELEMETRY_ENABLED=0 FLWR_DISABLE_UPDATE_CHECK=1
set +e
.venv/bin/python -m pytest "$@"
rc=$?
set -e
# pytest exit 5 = no tests collected: that is a failure of the suite, not a pass.
exit $rc
