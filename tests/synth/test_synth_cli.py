"""`flute synth train|sample|evaluate` end to end on simulated hub homes (F-HUF-14/17,
F-IMSD-1/3/6/15): a DP model is trained and charged, sampled under conditions into a typed CSV +
schema JSON, and evaluated against real train/holdout CSVs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from flute.cli.main import app
from flute.hub.ledger import PrivacyLedger
from flute.hub.node import open_hub
from flute.synth.conditions import holds, parse_conditions
from flute.synth.federated import open_hub_homes
from flute.synth.io import read_table, schema_path, write_table
from flute.synth.schema import SchemaError, study_schema

RUNNER = CliRunner()
VARIABLES = "ageAtBiopsy,psa,prostateVolume,pirads"


def _invoke(*args: str) -> str:
    result = RUNNER.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_train_sample_evaluate(synth_hub_homes: list[Path], tmp_path: Path) -> None:
    for home in synth_hub_homes:
        with open_hub(home) as hub:
            PrivacyLedger(hub.store.engine).set_budget("synth-cli", home.name, 3.0, 1e-5)
    hubs = [arg for home in synth_hub_homes for arg in ("--hub", str(home))]
    model = tmp_path / "model.json"
    out = _invoke("synth", "train", *hubs, "--out", str(model), "--epsilon", "2", "--study", "synth-cli", "--variables", VARIABLES)
    assert "epsilon=2, delta=1e-06 per one patient record" in out and json.loads(model.read_text())["provenance"]["mode"] == "dp"

    data = tmp_path / "synthetic.csv"
    out = _invoke("synth", "sample", str(model), "--rows", "400", "--where", "cspca=1,age>70", "--out", str(data), "--seed", "1")
    assert "rows meeting them 100.0%" in out
    frame, schema = read_table(data)
    assert len(frame) == 400 and holds(parse_conditions("cspca=1,age>70", schema), frame).all()
    assert {str(t) for t in frame.dtypes} == {"Int64", "float64", "string"} and str(frame["ageAtBiopsy"].dtype) == "Int64"
    cells = [line.split(",") for line in data.read_text().splitlines()[1:]]
    assert all("." not in row[0] and "." not in row[3] and len(row[1].partition(".")[2]) <= 1 for row in cells)  # age, PI-RADS integers; PSA one decimal

    refused = RUNNER.invoke(app, ["synth", "train", *hubs, "--out", str(model), "--epsilon", "2", "--study", "synth-cli", "--variables", VARIABLES])
    assert refused.exit_code == 1 and "remaining epsilon=1" in refused.output  # 3 - 2 left: a second training does not fit

    with open_hub_homes(synth_hub_homes, VARIABLES.split(","), "synth-cli") as real_hubs:
        real = np.concatenate([h.frame.to_numpy(dtype=object) for h in real_hubs])
        columns = list(real_hubs[0].frame.columns)
    import pandas as pd

    real_frame = pd.DataFrame(real, columns=columns).sample(frac=1.0, random_state=0)
    real_schema = study_schema(VARIABLES.split(","), schema.column("centre").categories)  # type: ignore[arg-type]
    write_table(real_frame.iloc[: len(real_frame) * 7 // 10], real_schema, tmp_path / "train.csv")
    write_table(real_frame.iloc[len(real_frame) * 7 // 10 :], real_schema, tmp_path / "holdout.csv")
    unconditional = tmp_path / "all.csv"
    _invoke("synth", "sample", str(model), "--rows", "600", "--out", str(unconditional))
    report = json.loads(_invoke("synth", "evaluate", str(unconditional), "--train", str(tmp_path / "train.csv"), "--holdout", str(tmp_path / "holdout.csv"), "--json"))
    assert set(report) == {"fidelity", "utility", "privacy"} and 0 <= report["privacy"]["mia_auc"] <= 1
    assert set(report["fidelity"]["column_distance"]) == set(schema.names)


def test_bad_requests_fail_clearly(tmp_path: Path) -> None:
    neither = RUNNER.invoke(app, ["synth", "train", "--hub", str(tmp_path), "--out", str(tmp_path / "m.json")])
    assert neither.exit_code == 2 and "exactly one of --epsilon" in neither.output
    bad_csv = tmp_path / "bad.csv"
    bad_csv.write_text("ageAtBiopsy,psa,pirads,centre,csPCa\n60,4.25,3,a,1\n")
    schema_path(bad_csv).write_text(study_schema(("ageAtBiopsy", "psa", "pirads"), ("a",)).to_json())
    try:
        read_table(bad_csv)
    except SchemaError as exc:
        assert "column 'psa', data row 1: '4.25' is not a decimal1 value" in str(exc)
    else:
        raise AssertionError("an off-grid value was accepted")
