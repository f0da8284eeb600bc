"""Every notebook in colab/ runs top to bottom (outputs are stripped in the repository)."""

import json

import pytest

from tests.conftest import REPO

NOTEBOOKS = sorted((REPO / "colab").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_outputs_are_stripped(path):
  cells = json.loads(path.read_text())["cells"]
  assert all(not c.get("outputs") and not c.get("execution_count") for c in cells
             if c["cell_type"] == "code"), f"{path.name} has stored outputs; strip them"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_executes(path, monkeypatch):
  nbformat = pytest.importorskip("nbformat")
  nbclient = pytest.importorskip("nbclient")
  monkeypatch.setenv("MPLBACKEND", "Agg")
  monkeypatch.setenv("XLA_FLAGS", "")  # one CPU device inside the kernel, as in Colab
  nb = nbformat.read(path, as_version=4)
  client = nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                                   resources={"metadata": {"path": str(REPO)}})
  client.execute()
  errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
  assert not errors
