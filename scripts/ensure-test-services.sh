#!/usr/bin/env bash
# Installs the real services the test suite starts on loopback: PostgreSQL (Debian), a
# FHIR server (Medplum fhir-router, npm; see install-fhir-test-server.sh) and Chromium (Debian),
# the headless browser the data-owner UI tests drive through Playwright.
# The tests themselves start and stop the servers; this only makes the binaries present.
set -euo pipefail
need_apt=()
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  need_apt+=(postgresql)
fi
if [ ! -x /usr/bin/chromium ]; then
  need_apt+=(chromium)
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
  else
    echo "WARNING: ${need_apt[*]} missing and not root: PostgreSQL / browser UI tests will be SKIPPED" >&2
  fi
fi
bash "$(dirname "$0")/install-fhir-test-server.sh"
