"""The noisy-defense table that compares the black-box FGSM sets crafted with a random start
(superseded: `results/superseded/<name>.json`, the runs before issue 24's fix) with those crafted
from the clean image (Goodfellow et al.'s FGSM, `results/<name>.json`), per target.

Loaded by experiments/tables.py, which calls `register(kit)` with its registry and helpers.
"""

from __future__ import annotations

import os

PAPER = "noisy_defense"


def _row(t, name: str, record: dict, which: str) -> list[str]:
  e = record["evals"]["blackbox_fgsm"]
  attack, g = e["set"]["attack"], e["gain"]
  # a set recorded before attack_record holds the block's None: resolve it as the attack did
  from freqnoise.adversarial import attack_config
  start = "random" if attack_config(attack).random_start else "clean image"
  return [f"{name}, {which}", start,
          f"{100 * e['set']['substitute_adversarial_accuracy']:.2f}",
          f"{100 * g['noiseless_vote']:.2f}", f"{g['best_snr_db']:g} dB",
          f"{100 * g['best_vote']:.2f}", f"{100 * g['vote_gain']:+.2f}",
          f"{100 * g['single_pass_gain']:+.2f} ± {100 * g['single_pass_ci95']:.2f}",
          f"{100 * record['target']['test_accuracy']:.2f}"]


def register(t) -> None:
  @t.table("noisy_defense_fgsm_start")
  def fgsm_start() -> str:
    """Black-box FGSM rows before (random start) and after (clean start) issue 24's fix."""
    header = ["target, FGSM set", "FGSM start", "substitute on its own set", "target: no noise, vote",
              "best SNR", "best: vote", "gain (vote)", "gain (1 pass, ± 95% CI)",
              "target clean test accuracy"]
    rows = []
    for old_path in t._results(PAPER, os.path.join("superseded", "*.json")):
      name = os.path.basename(old_path)[:-5]
      new_path = os.path.join(os.path.dirname(os.path.dirname(old_path)), f"{name}.json")
      rows.append(_row(t, name, t._read(old_path), "superseded"))
      rows.append(_row(t, name, t._read(new_path), "rerun") if os.path.isfile(new_path)
                  else [f"{name}, rerun", "pending"] + ["—"] * (len(header) - 2))
    return t._markdown(header, rows or [["pending"] + ["—"] * (len(header) - 1)])
