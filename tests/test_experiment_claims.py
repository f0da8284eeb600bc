"""experiments/claims.py: DESIGN.md's verdict rule, the claims format, and the files on disk."""

import json
import os

import pytest

from experiments import claims, claims_build


def _claim(**kw):
  base = {"id": "x", "paper": "Xu et al. 2020", "statement": "s", "kind": "difference",
          "paper_value": 1.0, "ours": 0.5, "ci95": [-0.2, 1.2], "n": 8, "over": "seeds",
          "unit": "points", "verdict": "inconclusive", "files": ["README.md"], "command": "c",
          "differs": "d"}
  return {**base, **kw}


@pytest.mark.parametrize("kind,paper,tolerance,ci,expected", [
    ("level", 89.1, 1.0, [87.5, 88.2], "reproduced"),       # 88.2 >= 88.1
    ("level", 89.1, 1.0, [87.5, 88.0], "not reproduced"),   # 88.0 < 88.1
    ("level", 89.1, 1.0, None, "inconclusive"),
    ("difference", 1.0, None, [0.1, 2.0], "reproduced"),
    ("difference", 1.0, None, [-2.0, -0.1], "contradicted"),
    ("difference", 1.0, None, [-0.5, 0.9], "not reproduced"),  # holds 0, below d
    ("difference", 1.0, None, [-0.5, 1.5], "inconclusive"),    # holds 0 and d
    ("difference", 1.0, None, None, "inconclusive"),
])
def test_the_verdict_is_design_mds_rule(kind, paper, tolerance, ci, expected):
  claim = _claim(kind=kind, paper_value=paper, ci95=ci, tolerance=tolerance)
  assert claims.verdict(claim) == expected


@pytest.mark.parametrize("change,message", [
    ({"verdict": "reproduced"}, r"verdict 'reproduced' is not the rule's 'inconclusive'"),
    ({"kind": "ratio"}, r"kind must be one of"),
    ({"ci95": [1.0, 0.0]}, r"ci95 must be \[low, high\] with low <= high"),
    ({"ci95": None, "n": 4}, r"n = 4 seeds give an interval; state ci95"),
    ({"over": "runs"}, r"over must be one of"),
    ({"files": ["experiments/nope.json"]}, r"result files \['experiments/nope.json'\] do not"),
    ({"paper_value": -1.0}, r"a difference claim states the paper's d > 0"),
    ({"kind": "level", "verdict": "reproduced"}, r"a level claim needs a numeric tolerance"),
    ({"n": True}, r"n must be"),
])
def test_a_bad_claim_is_refused_naming_the_field(change, message):
  with pytest.raises(ValueError, match=message):
    claims.check(_claim(**change), "results/claims.json")
  claims.check(_claim(), "results/claims.json")  # the unchanged claim is fine


def test_load_reads_every_papers_file_and_refuses_a_repeated_id(tmp_path, monkeypatch):
  monkeypatch.setattr(claims, "ROOT", str(tmp_path))
  (tmp_path / "README.md").write_text("x")
  for paper in ("a", "b"):
    os.makedirs(tmp_path / "experiments" / paper / "results")
    (tmp_path / "experiments" / paper / "results" / "claims.json").write_text(
        json.dumps({"claims": [_claim(id=f"id_{paper}")]}))
  assert [(p, c["id"]) for p, c in claims.load(str(tmp_path))] == [("a", "id_a"), ("b", "id_b")]
  (tmp_path / "experiments" / "b" / "results" / "claims.json").write_text(
      json.dumps({"claims": [_claim(id="id_a")]}))
  with pytest.raises(ValueError, match=r"claim id 'id_a' also in experiments/a/results"):
    claims.load(str(tmp_path))


def test_the_repositorys_claims_files_hold():
  for paper, claim in claims.load():
    assert claim["verdict"] == claims.verdict(claim), (paper, claim["id"])


def test_the_committed_claims_files_are_what_the_specs_compute():
  # every experiments/<paper>/claims_spec.py run on today's result files gives, byte for byte,
  # the committed results/claims.json (a new or changed result file needs --write)
  assert claims_build.main(["--check"]) == 0
