"""The claims table: verdict rules, tolerances, the file written next to the summary."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from experiments import registry
from experiments.claims import (CLAIMS, COLUMNS, Claim, Fixed, MeanOverTrials, OneRunOverTrials,
                                PooledOverTrials, Requirement, StdOverTrials, claims_section,
                                claims_table, evaluate)
from experiments.summary import write_summary

FULL = {"quick": False, "config": {"n": 5, "mode": "a"}}


def _claim(**kw):
    base = dict(claim="x.y", experiment="exp", key="value", quantity="q", paper=2.0, unit="dB",
                source="paper, Fig. 1", tolerance=Fixed(0.5, "bound"))
    base.update(kw)
    return Claim(**base)


def test_verdicts_of_a_tolerance_claim():
    claim = _claim(requires=(Requirement("mode", "a"), Requirement("n", 5, ">=")))
    assert evaluate(claim, FULL, {"value": 2.4})["verdict"] == "pass"
    assert evaluate(claim, FULL, {"value": 2.6})["verdict"] == "fail"
    assert evaluate(claim, FULL, {"value": 1.4})["verdict"] == "fail"
    assert evaluate(claim, FULL, {"value": float("nan")})["verdict"] == "fail"
    quick = evaluate(claim, dict(FULL, quick=True), {"value": 2.0})
    assert quick["verdict"] == "not-comparable" and quick["reason"] == "quick run"
    differs = evaluate(claim, dict(FULL, config={"n": 5, "mode": "b"}), {"value": 2.0})
    assert differs["verdict"] == "not-comparable" and "mode" in differs["reason"]
    fewer = evaluate(claim, dict(FULL, config={"n": 4, "mode": "a"}), {"value": 2.0})
    assert fewer["verdict"] == "not-comparable" and ">= 5" in fewer["reason"]
    assert evaluate(claim, None, None)["reason"].startswith("no result")
    assert "no number" in evaluate(claim, FULL, {})["reason"]


def test_inequality_claims_and_headline_requirements():
    below = _claim(relation="<", tolerance=None, paper=1.0)
    assert evaluate(below, FULL, {"value": 0.99})["verdict"] == "pass"
    assert evaluate(below, FULL, {"value": 1.0})["verdict"] == "fail"
    row = evaluate(below, FULL, {"value": 0.5})
    assert row["paper"] == "< 1" and row["tolerance"] == ""
    above = _claim(relation=">", tolerance=None, paper=0.0,
                   requires=(Requirement("stopped", 0, where="headline"),))
    assert evaluate(above, FULL, {"value": 0.1, "stopped": 0})["verdict"] == "pass"
    assert evaluate(above, FULL, {"value": 0.1, "stopped": 2})["verdict"] == "not-comparable"
    with pytest.raises(ValueError, match="tolerance"):
        _claim(relation="<")
    with pytest.raises(ValueError, match="relation"):
        _claim(relation="~")


def test_tolerances_from_the_papers_spread():
    head = {"trials": 20}
    # 1.96 x 2.82 x sqrt(1/100 + 1/20) = 1.3538 (hand-computed)
    assert MeanOverTrials(2.82, 100, "trials").value(head) == pytest.approx(1.3538, abs=1e-4)
    # delta method: 1.96 x (2 x 4.16 x 1.54 / (2 x 4.66)) x sqrt(0.06) = 0.6600
    assert PooledOverTrials(1.54, 4.16, 4.66, 100, "trials").value(head) == pytest.approx(0.6600, abs=1e-4)
    # 1.96 x 1.54 x sqrt(1/198 + 1/38) = 0.5346
    assert StdOverTrials(1.54, 100, "trials").value(head) == pytest.approx(0.5346, abs=1e-4)
    # one run: 1.96 x 1.54 x sqrt(1 + 1/20) = 3.0928
    assert OneRunOverTrials(1.54, "trials", "proxy").value(head) == pytest.approx(3.0928, abs=1e-4)
    claim = _claim(tolerance=MeanOverTrials(2.82, 100, "trials"))
    row = evaluate(claim, FULL, {"value": 3.0})
    assert row["verdict"] == "not-comparable" and "trials" in row["reason"]
    assert evaluate(claim, FULL, {"value": 3.0, "trials": 20})["verdict"] == "pass"
    assert evaluate(claim, FULL, {"value": 3.4, "trials": 20})["verdict"] == "fail"


def test_registry_is_consistent():
    names = [c.claim for c in CLAIMS]
    assert len(names) == len(set(names))
    required = {"colorless.N4.modal_spread_init": 7.57, "colorless.N4.modal_spread_optim": 4.16,
                "colorless.N4.modal_spread_pooled_optim": 4.66,
                "colorless.N8_dafx23.modal_spread_init": 9.46,
                "colorless.N8_dafx23.modal_spread_optim": 4.32, "geq.max_error_centres_db": 1.0}
    by_name = {c.claim: c for c in CLAIMS}
    for name, value in required.items():
        assert by_name[name].paper == value
    assert by_name["geq.max_error_centres_db"].relation == "<"
    for claim in CLAIMS:
        assert claim.experiment in registry.names(), claim.claim
        assert claim.source


def test_table_written_with_the_summary(tmp_path):
    exp = tmp_path / "geq_accuracy"
    exp.mkdir()
    meta = {"quick": True, "config": {}, "description": "d"}
    (exp / "meta.json").write_text(json.dumps(meta))
    (exp / "headline.json").write_text(json.dumps({"max_error_centres_db": 0.5}))
    write_summary(tmp_path)
    table = pd.read_csv(tmp_path / "claims.csv", keep_default_na=False)
    assert list(table.columns) == COLUMNS and len(table) == len(CLAIMS)
    assert set(table["verdict"]) == {"not-comparable"}
    row = table[table["claim"] == "geq.max_error_centres_db"].iloc[0]
    assert row["project"] == "0.5" and row["reason"] == "quick run"
    summary = (tmp_path / "summary.md").read_text()
    assert summary.index("## Claims") < summary.index("## geq_accuracy")
    assert claims_section(tmp_path) in summary
    assert claims_table(tmp_path).equals(claims_table(tmp_path))


def test_every_experiment_says_what_it_reproduces():
    """Each description names the paper and figure it reproduces, or says it is an extension."""
    for name in registry.names():
        text = registry.description(name)
        assert text.startswith(("reproduction of ", "extension")), (name, text)
