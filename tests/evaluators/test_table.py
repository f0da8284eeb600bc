"""Evaluator scalars as tables: an SNR table per sweep (a sub-table per prefix such as 'clean'),
COCO AP as box / mask rows, the rest packed in lines; a training result with each evaluator under
its name and one legend of the columns shown; nothing wider than 100 columns."""

import math

from freqnoise.evaluators.table import format_table, legend, number, results_table

COCO = {f"{kind}_{stat}": value for kind, base in (("box", 0.25), ("mask", 0.125))
        for stat, value in (("AP", base), ("AP50", 2 * base), ("APs", math.nan))}


def test_coco_ap_is_a_box_and_mask_table():
  assert format_table(COCO, step=4).splitlines() == [
      "         AP   AP50    APs",
      " box 0.2500 0.5000    nan",
      "mask 0.1250 0.2500    nan",
      "checkpoint step 4"]


def test_attack_scalars_give_a_table_per_prefix_in_snr_order():
  scalars = {"snr_inf/mean": 0.9, "snr_-5/mean": 0.25, "clean/snr_inf/mean": 0.95,
             "clean/snr_-5/mean": 0.5, "examples": 100}
  assert format_table(scalars).splitlines() == [
      "SNR dB   mean", "    -5 0.2500", "   inf 0.9000",
      "clean:", "SNR dB   mean", "    -5 0.5000", "   inf 0.9500",
      "examples 100",
      legend(("mean",))]
  assert legend(("mean",)).startswith("mean: the metric (accuracy; perplexity for mc_perplexity)")


def test_a_training_result_is_its_own_scalars_then_each_evaluator():
  result = {"test_loss": 2.3596, "test_accuracy": 0.0869, "steps": 10, "train_seconds": 32.64,
            "train_steps_per_sec": 187.62, "test_perplexity": float("nan")}
  for snr in ("0", "inf"):
    result.update({f"montecarlo/snr_{snr}/{m}": 0.5 for m in
                   ("mean", "ci95", "std", "p2.5", "p97.5", "vote_majority", "vote_mean_prob")})
  result.update({f"coco/{k}": v for k, v in COCO.items()})
  lines = results_table(result).splitlines()
  assert lines[:2] == [
      "test_loss 2.3596 | test_accuracy 0.0869 | steps 10 | train_seconds 32.6400 |",
      "train_steps_per_sec 187.6 | test_perplexity nan"]
  assert lines[2:6] == ["montecarlo:",
                        "  SNR dB   mean   ci95    std   p2.5  p97.5 major.  meanp",
                        "       0 " + " ".join(["0.5000"] * 7),
                        "     inf " + " ".join(["0.5000"] * 7)]
  assert lines[6:10] == ["coco:", "           AP   AP50    APs", "   box 0.2500 0.5000    nan",
                         "  mask 0.1250 0.2500    nan"]
  assert "\n".join(lines[10:]) == legend(("mean", "ci95", "std", "p2.5", "p97.5",
                                          "vote_majority", "vote_mean_prob"))
  assert len(lines) == 15 and max(len(line) for line in lines) <= 100


def test_numbers():
  assert [number(v) for v in (10, 0.08686, 115.234, None, math.inf)] == [
      "10", "0.0869", "115.2", "nan", "inf"]
