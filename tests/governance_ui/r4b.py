"""Validation with fhir.resources' R4B models in a child interpreter: the test tree has its own
`fhir` package (tests/fhir), which shadows the `fhir` namespace of fhir.resources inside pytest."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

_SCRIPT = """
import importlib, json, sys
problems = []
for resource in json.load(sys.stdin):
    kind = resource["resourceType"]
    model = getattr(importlib.import_module("fhir.resources.R4B." + kind.lower()), kind)
    try:
        model.model_validate(resource)
    except Exception as exc:
        problems.append(f"{kind}/{resource.get('id')}: {exc}")
print(json.dumps(problems))
"""


def r4b_problems(resources: list[dict[str, Any]]) -> list[str]:
    """Every validation problem of `resources` against the R4B models (empty: all valid)."""
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT], input=json.dumps(resources), capture_output=True, text=True,
        cwd=Path(__file__).resolve().parents[2], timeout=120, check=True,
    )
    return list(json.loads(done.stdout))
