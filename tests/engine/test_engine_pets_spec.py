"""PetOptions validation (F-SRS-4, F-SRS-10): inconsistent PET settings are refused with reasons."""

from __future__ import annotations

from typing import Any

import pytest

from flute.engine.spec import SpecError

from .engine_inputs import make_spec

BOUNDS = {"ageAtBiopsy": [40, 90], "psa": [0.1, 100], "prostateVolume": [10, 300], "pirads": [1, 5]}
DP = {"target_epsilon": 1.0, "feature_bounds": BOUNDS}
GRADIENT = {"name": "clipped_gradient"}


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"pets": {"mode": "none", "dp": DP}}, "mode is 'none'"),
        ({"pets": {"mode": "secagg", "dp": DP}}, "use mode 'secagg_dp'"),
        ({"pets": {"mode": "secagg_dp"}}, "needs pets.dp"),
        ({"pets": {"mode": "secagg"}, "evaluation": {"leave_one_hub_out": True}}, "leave_one_hub_out = false"),
        ({"pets": {"mode": "secagg", "secagg": {"threshold": 3}}}, "exceeds federation.min_hubs"),
        ({"pets": {"mode": "secagg", "secagg": {"neighbours": 3}}}, "must be even"),
        ({"pets": {"mode": "secagg", "secagg": {"clip_bound": 2.0**40, "scale_bits": 40}}}, "overflows"),
        ({"pets": {"mode": "secagg_dp", "dp": DP}}, "strategy.name = 'clipped_gradient'"),
        ({"strategy": GRADIENT, "pets": {"mode": "secagg_dp", "dp": {**DP, "feature_bounds": {"psa": [1, 2]}}}}, "missing"),
        ({"strategy": GRADIENT, "pets": {"mode": "secagg_dp", "dp": {**DP, "feature_bounds": {**BOUNDS, "psa": [0, 10]}}}}, "lower bound > 0"),
        ({"strategy": GRADIENT, "pets": {"mode": "secagg_dp", "dp": {**DP, "tolerated_colluders": 2}}}, "honest surviving hub"),
        ({"strategy": GRADIENT, "pets": {"mode": "secagg_dp", "dp": {**DP, "target_epsilon": 0}}}, "greater than 0"),
    ],
)
def test_inconsistent_pet_settings_are_refused(overrides: dict[str, Any], reason: str) -> None:
    with pytest.raises(SpecError, match=reason):
        make_spec(**overrides)


def test_valid_pet_settings_round_trip(tmp_path: Any) -> None:
    spec = make_spec(strategy=GRADIENT, pets={"mode": "secagg_dp", "secagg": {"threshold": 2}, "dp": DP})
    for suffix in (".json", ".toml"):
        spec.save(tmp_path / f"spec{suffix}")
        assert type(spec).load(tmp_path / f"spec{suffix}") == spec
