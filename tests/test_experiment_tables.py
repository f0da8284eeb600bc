"""experiments/tables.py: README tables equal what results/*.json give; markers; pending rows."""

import importlib.util
import json

import pytest

from tests.conftest import REPO


@pytest.fixture(scope="module")
def tables():
  path = REPO / "experiments" / "tables.py"
  spec = importlib.util.spec_from_file_location("experiment_tables", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def test_readme_tables_match_result_files(tables, capsys):
  status = tables.main(["--check"])
  assert status == 0, capsys.readouterr().err


def test_render_rewrites_between_markers_and_keeps_indentation(tables, monkeypatch):
  monkeypatch.setitem(tables.TABLES, "demo", lambda: "| a |\n|---|\n| 1 |")
  text = "intro\n- item\n\n  <!-- table:demo -->\n  | old |\n  <!-- /table:demo -->\nafter\n"
  assert tables.render(text) == ("intro\n- item\n\n  <!-- table:demo -->\n  | a |\n  |---|\n"
                                 "  | 1 |\n  <!-- /table:demo -->\nafter\n")


def test_unknown_or_unclosed_marker_is_an_error(tables):
  with pytest.raises(SystemExit, match="unknown table"):
    tables.render("<!-- table:nope -->\n<!-- /table:nope -->\n")
  with pytest.raises(SystemExit, match="no matching"):
    tables.render("<!-- table:summary -->\n| stale |\n")


def _fake_repo(tmp_path, monkeypatch, tables):
  monkeypatch.setattr(tables, "ROOT", str(tmp_path))
  folder = tmp_path / "experiments" / "noisy_inference"
  (folder / "results").mkdir(parents=True)
  readme = folder / "README.md"
  readme.write_text("x\n<!-- table:noisy_mnist_snr0 -->\n<!-- /table:noisy_mnist_snr0 -->\n")
  return folder, readme


def test_pending_row_until_the_result_file_exists(tables, tmp_path, monkeypatch):
  folder, readme = _fake_repo(tmp_path, monkeypatch, tables)
  assert tables.main([]) == 0
  assert "pending: `results/mnist_snr0_*.json`" in readme.read_text()
  # a Monte Carlo result in evaluators.result_to_json form, under "montecarlo" with metadata
  mc = {"snrs_db": [0.0], "accuracy": [[0.90, 0.92, 0.94, 0.96]],
        "majority": [[0.90, 0.95, 0.97, 0.98]], "mean_prob": [[0.90, 0.96, 0.97, 0.99]],
        "num_examples": 10000}
  (folder / "results" / "mnist_snr0_k4.json").write_text(json.dumps({"command": "x",
                                                                     "montecarlo": mc}))
  assert tables.main(["--check"]) == 1  # the README is now stale
  assert tables.main([]) == 0
  # mean 93.00, std with ddof=1: sqrt((3² + 1² + 1² + 3²) / 3) = 2.58 points
  assert "| `mnist_snr0_k4.json` | 0 dB | 4 | 93.00 ± 2.58 | 98.00 | 99.00 |" in readme.read_text()
  assert tables.main(["--check"]) == 0


def test_vote_table_by_k(tables, tmp_path, monkeypatch):
  folder, _ = _fake_repo(tmp_path, monkeypatch, tables)
  mc = {"snrs_db": ["inf"], "accuracy": [[1.0, 1.0]], "majority": [[0.5, 0.75]],
        "mean_prob": [[0.5, 1.0]], "num_examples": 4}
  (folder / "results" / "mnist_snr0_inf.json").write_text(json.dumps(mc))
  rows = tables.noisy_mnist_snr0_k().splitlines()[2:]
  empty = " | —" * 5 + " |"
  assert rows == ["| `mnist_snr0_inf.json`, ∞, majority | 50.00 | 75.00" + empty,
                  "| `mnist_snr0_inf.json`, ∞, mean-prob | 50.00 | 100.00" + empty]


def test_perplexity_format(tables):
  assert [tables._perplexity(x) for x in (2.14, 292.04, 517515.67, 1021494108.8)] == [
      "2.1", "292", "517,516", "1.0 × 10⁹"]
