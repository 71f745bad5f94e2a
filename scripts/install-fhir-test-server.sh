#!/usr/bin/env bash
# Installs the real FHIR server the REST-source tests start on loopback: Medplum's fhir-router
# with its in-memory repository (tests/fhir_server/, exact versions from package-lock.json).
# Needs Node.js >= 20.19 and npm. The tests start and stop the server themselves.
set -euo pipefail
cd "$(dirname "$0")/../tests/fhir_server"
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
  fi
fi
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "WARNING: Node.js/npm missing: the FHIR REST tests will be SKIPPED" >&2
  exit 0
fi
if ! node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=19)?0:1)'; then
  echo "WARNING: Node.js $(node --version) is older than 20.19: the FHIR REST tests will be SKIPPED" >&2
  exit 0
fi
# Reinstall only when package-lock.json changed since the last install.
stamp=node_modules/.installed-lock.sha256
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$(sha256sum package-lock.json)" ]; then
  npm ci --no-audit --no-fund --loglevel=error
  sha256sum package-lock.json > "$stamp"
fi
