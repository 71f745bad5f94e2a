"""`flute stats run` end to end: `flute simulate` output imported with `flute hub init` / `flute hub
import`, budgets set by the data owner with `flute hub budget set`, statistics with each PET
(F-PIL-16/18, NF-PIL-5, F-SRS-4)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner, Result

from flute.cli.main import app
from flute.hub.node import open_hub

from .engine_inputs import make_spec

RUNNER = CliRunner()


def _ok(args: list[str]) -> Result:
    result = RUNNER.invoke(app, args)
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture(scope="module")
def homes(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("stats-cli")
    _ok(["simulate", "--out", str(root / "sim"), "--seed", "9", "--format", "ndjson", "--scale", "0.05"])
    sites = sorted(p.name for p in (root / "sim").iterdir() if p.is_dir())
    for site in sites:
        home = root / "hubs" / site
        _ok(["hub", "init", "--name", site, "--home", str(home)])
        _ok(["hub", "import", str(root / "sim" / site), "--home", str(home)])
        _ok(["hub", "budget", "set", "cli-study", "--dataset", site, "--epsilon", "1.0", "--delta", "1e-6", "--home", str(home)])
    return [root / "hubs" / site for site in sites]


def _hub_args(homes: list[Path]) -> list[str]:
    return [arg for home in homes for arg in ("--hub", str(home))]


def _observed(homes: list[Path], variable: str) -> int:
    total = 0
    for home in homes:
        with open_hub(home) as hub:
            column = hub.store.study_table([variable]).features[:, 0]
        total += int(np.sum(~np.isnan(column)))
    return total


def test_dp_statistics_print_per_hub_and_pooled_with_their_cost(homes: list[Path]) -> None:
    output = _ok(["stats", "run", *_hub_args(homes), "--study", "cli-study", "--variables", "psa,pirads", "--kind", "mean", "--epsilon", "0.6"]).output
    assert "privacy: local DP at each hub" in output and "per one patient record" in output
    assert output.count("charged epsilon=0.6, delta=0 per record") == 3
    assert "pooled over 3 hub(s)" in output and "psa: n " in output


def test_he_statistics_json_pooled_counts_are_exact(homes: list[Path]) -> None:
    output = _ok(["stats", "run", *_hub_args(homes), "--study", "cli-study", "--variables", "psa,ageAtBiopsy", "--kind", "variance", "--pet", "he", "--json"]).output
    result = json.loads(output)
    assert result["request"]["pet"] == "he" and all(hub["estimates"] == [] and hub["cost"] is None for hub in result["hubs"])
    pooled = {estimate["variable"]: estimate for estimate in result["pooled"]}
    assert pooled["psa"]["n"] == _observed(homes, "psa") and pooled["ageAtBiopsy"]["n"] == _observed(homes, "ageAtBiopsy")
    assert "CKKS" in result["guarantee"] and result["unit_of_privacy"].startswith("one patient record")


def test_histogram_flags_suppressed_cells(homes: list[Path]) -> None:
    output = _ok(["stats", "run", *_hub_args(homes), "--study", "cli-study", "--variables", "pirads", "--kind", "histogram", "--pet", "none"]).output
    assert "(min cell size 10)" in output and "suppressed" in output


def test_over_budget_query_is_refused_with_the_ledgers_message(homes: list[Path]) -> None:
    result = RUNNER.invoke(app, ["stats", "run", *_hub_args(homes), "--study", "cli-study", "--variables", "psa", "--kind", "count", "--epsilon", "5"])
    assert result.exit_code == 1
    assert "would run out" in result.output and "flute hub budget set cli-study" in result.output


def test_bad_requests_exit_2_with_the_reason(homes: list[Path]) -> None:
    result = RUNNER.invoke(app, ["stats", "run", *_hub_args(homes), "--study", "cli-study", "--variables", "psa", "--pet", "dp"])
    assert result.exit_code == 2 and "pet 'dp' needs an epsilon" in result.output
    result = RUNNER.invoke(app, ["stats", "run", *_hub_args(homes), "--study", "cli-study", "--variables", "weight", "--pet", "none"])
    assert result.exit_code == 2 and "unknown study variable 'weight'" in result.output


def test_the_study_spec_chooses_the_statistics_pet(homes: list[Path], tmp_path: Path) -> None:
    spec = make_spec(study_id="cli-study", cohort={"variables": ["psa", "pirads"]}, preprocessing={"log_transform": ["psa"]}, pets={"statistics": "he"})
    spec.save(tmp_path / "study.json")
    result = json.loads(_ok(["stats", "run", *_hub_args(homes), "--spec", str(tmp_path / "study.json"), "--kind", "count", "--json"]).output)
    assert result["request"]["pet"] == "he" and result["request"]["study"] == "cli-study"
    assert [estimate["variable"] for estimate in result["pooled"]] == ["psa", "pirads"]
    refused = RUNNER.invoke(app, ["stats", "run", *_hub_args(homes), "--spec", str(tmp_path / "study.json"), "--pet", "none"])
    assert refused.exit_code == 2 and "contradicts the spec's pets.statistics 'he'" in refused.output
