"""Validation of emitted resources with fhir.resources' FHIR R4B models, in a separate Python
process: under pytest the repository's `tests/fhir` package shadows the `fhir` namespace that
fhir.resources lives in, so it cannot be imported in the test process itself. fhir.resources
checks structure, cardinality and datatypes (nested resources too), not code bindings: the tests
assert the codes themselves."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

_VALIDATOR = """
import json, sys
from fhir.resources.R4B import get_fhir_model_class
problems = []
for index, resource in enumerate(json.load(sys.stdin)):
    try:
        get_fhir_model_class(resource["resourceType"]).model_validate(resource)
    except Exception as error:
        problems.append(f"resource {index} ({resource.get('resourceType')}): {error}")
print("\\n".join(problems))
sys.exit(1 if problems else 0)
"""


def assert_valid_r4b(*resources: dict[str, Any]) -> None:
    """Every resource (a Bundle validates its entries too) is valid FHIR R4B."""
    done = subprocess.run(
        [sys.executable, "-I", "-c", _VALIDATOR], input=json.dumps(list(resources)), capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, f"not valid FHIR R4B:\n{done.stdout}{done.stderr}"
