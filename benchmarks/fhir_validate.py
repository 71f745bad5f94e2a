"""Throughput of FLUTE's profile validation (flute.fhir.validate) against a FHIR object model.

Data: the 14 resources of the HL7 Europe FLUTE IG example bundles
(../shared/data/flute-ig-examples, relative to the repository root), references resolved by
the readers. Measured per resource: `validate_resource` (every FLUTE profile rule, plain
dicts, rules compiled at import) and, as the reference in the same run, fhir.resources
8.3.0's R4B pydantic model parse (`model_validate`), which checks only base FHIR structure
and none of the IG's codes, units or invariants.

Run: .venv/bin/python benchmarks/fhir_validate.py [--json PATH] [--seconds S]
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flute.fhir.readers import iter_units
from flute.fhir.validate import validate_resource

IG_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "flute-ig-examples"
BUNDLES = ("EXP-S1-IncludedPatient.json", "EXP-S2-ExcludedPatient.json")


def rate(action: Callable[[dict[str, Any]], object], resources: list[dict[str, Any]], seconds: float) -> float:
    """Resources per second, over whole passes for at least `seconds`."""
    done, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds or done == 0:
        for resource in resources:
            action(resource)
        done += len(resources)
    return done / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path, help="write the figures as a flat JSON object")
    parser.add_argument("--seconds", type=float, default=2.0, help="time per measurement")
    args = parser.parse_args()

    from fhir.resources.R4B import get_fhir_model_class

    resources = [e.resource for u in iter_units([IG_DIR / b for b in BUNDLES]) for e in u.entries if e.resource]
    assert all(validate_resource(r) == [] for r in resources), "the IG examples must validate cleanly"

    def pydantic_parse(resource: dict[str, Any]) -> object:
        return get_fhir_model_class(resource["resourceType"]).model_validate(resource)

    flute = rate(validate_resource, resources, args.seconds)
    reference = rate(pydantic_parse, resources, args.seconds)
    figures = {
        "resources": len(resources),
        "flute_validate_per_s": round(flute),
        "fhir_resources_r4b_parse_per_s": round(reference),
        "ratio_flute_over_reference": round(flute / reference, 2),
    }
    print(f"{'measure':<44}{'resources/s':>14}")
    print(f"{'flute.fhir.validate_resource (IG rules)':<44}{flute:>14,.0f}")
    print(f"{'fhir.resources R4B model_validate (structure)':<44}{reference:>14,.0f}")
    print(f"{'ratio flute / reference':<44}{flute / reference:>14.2f}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
