"""Paper 2's noisy-inference claims (Qin & Vucinic, first half) and ours, from results/*.json.

Read by experiments/claims_build.py, which writes results/claims.json. One trained model per
result file, so a level claim's interval is over the test images (Wilson), not over seeds.

Claims of the README without a result file, hence not here: the clean-trained MNIST model's
collapse at 0 dB (paper 21.1%; measured in commit ceb2995, arrays not kept) and CIFAR-10's
noise-trained vote at 0 dB (paper 89.1%; 2-epoch CPU runs, no result files kept).
"""

from claims_build import level_over_images, read, results_path

PAPER = "noisy_inference"
CITE = "Qin & Vucinic, Noisy computations during inference: harmful or helpful?, arXiv 1811.10649"


def _count(accuracy: float, total: int, where: str) -> int:
  """Correct images behind an accuracy of `total` images (it must be a whole number of them)."""
  correct = round(accuracy * total)
  if abs(accuracy * total - correct) > 1e-6 * total:
    raise ValueError(f"{where}: accuracy {accuracy} is not a count of {total} images")
  return correct


def claims() -> list[dict]:
  path = results_path(PAPER, "mnist_snr0_k32.json")
  mc = read(path)["montecarlo"]
  if mc["snrs_db"] != [0.0]:
    raise ValueError(f"{path}: expected the one eval SNR 0 dB, got {mc['snrs_db']}")
  total, passes = int(mc["num_examples"]), len(mc["majority"][0])
  vote = mc["majority"][0][-1]  # majority over all passes at 0 dB
  claim = level_over_images(
      {"id": "s2_mnist_snr0_noise_trained_vote", "paper": CITE,
       "statement": "A CNN trained with noise in every product and voting over noisy passes "
                    "restores MNIST accuracy at eval SNR 0 dB: 99.5% (clean-trained: 21.1%).",
       "paper_value": 99.5, "tolerance": 1.0, "unit": "%",
       "command": "python -m freqnoise.main --config=configs/noisy_mnist.py:snr=0 --workdir=RUN; "
                  "python -m freqnoise.evaluate --workdir=RUN --snrs_db=0 --num_draws=32 "
                  "--config.evals.montecarlo.output=mc_0db_k32.json",
       "differs": f"Ours: a LeNet-style CNN (conv 16/32 with average pooling, dense 512) trained "
                  f"20 epochs at 0 dB with the gradient through the noise power, majority vote "
                  f"over {passes} passes, one seed; the interval is the sampling of the "
                  f"{total:,} test images (Wilson), not the spread over seeds or draws. The "
                  f"paper's network and number of votes are not known to us."},
      _count(vote, total, path), total, [path])
  claim["mean_prob_vote"] = round(100 * mc["mean_prob"][0][-1], 4)
  return [claim]
