"""experiments/multihost/run_local.sh as the README shows it:
`LOCAL_DEVICES=2 experiments/multihost/run_local.sh 2 configs/digits_mlp.py DIR`, run to the end.

It hung 3 times of 3 (issue 25): XLA's CPU client deadlocked once a device had 32 programs in
flight, which the trainer reaches between two progress lines (log_every=100). 100 steps of the
example itself (its first progress line, where it hung once) keep the test near a minute; tests/
test_distributed.py's test_hundreds_of_steps_in_flight_do_not_deadlock hangs every time on the
old code.
"""

import json

from freqnoise.metrics import read_metrics
from tests.test_distributed import launch


def test_the_readme_example_runs_to_the_end(tmp_path):
  run = tmp_path / "digits_2x2"
  stdout = launch(2, "configs/digits_mlp.py", run, "--config.num_steps=100")  # LOCAL_DEVICES=2
  assert "step 100/100 |" in stdout
  final = json.loads((run / "final_metrics.json").read_text())
  assert final["steps"] == 100 and final["test_accuracy"] > 0.95, final  # (0.9866 here)
  rows = [(r["step"], r["split"]) for r in read_metrics(str(run))]
  assert rows == [(100, "train"), (100, "test")]
