"""One process of tests/test_distributed.py's watchdog test: `python -m freqnoise.main` with the
same flags, except that process SKIP (from the environment variable FREQNOISE_TEST_SKIP) skips the
test-split evaluation (a collective of every process) and waits instead, as a process with a bug
in its own code path would.

    FREQNOISE_TEST_SKIP=1 python tests/multihost/skip_evaluation.py --config=... --workdir=...
"""

import os
import re
import sys
import time

from freqnoise import distributed, evaluators, main


def skipping_evaluator(experiment):
  def evaluate(state, split):
    distributed.set_phase(f"test hook: skipped the {split} evaluation, sleeping")
    time.sleep(600)
  return evaluate


if __name__ == "__main__":
  pid = int(re.search(r"--config\.process_id=(\d+)", " ".join(sys.argv)).group(1))
  if pid == int(os.environ["FREQNOISE_TEST_SKIP"]):
    evaluators.split_evaluator = skipping_evaluator
  main.run()
