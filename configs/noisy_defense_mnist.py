"""Noise at inference as a defense (paper 2, second half) on MNIST: an adversarially trained
target, a naturally trained substitute that crafts black-box transfer sets, and the target's
accuracy on them over inference SNRs x noise draws (with voting), beside EOT white-box PGD.

Commands (substitute first: its evaluators write the transfer sets the target reads):
  python -m freqnoise.main --config=configs/noisy_defense_mnist.py:role=substitute \
      --workdir=/tmp/defense/mnist_substitute
  python -m freqnoise.main \
      --config=configs/noisy_defense_mnist.py:role=target,substitute=/tmp/defense/mnist_substitute \
      --workdir=/tmp/defense/mnist_target
  (or both: experiments/noisy_defense/run.sh mnist)
Arguments (`configs/noisy_defense_mnist.py:KEY=VALUE,...`): `role` = target | substitute (default
target); `substitute` = the substitute's workdir, whose pgd40.npz / fgsm.npz the target's black-box
evaluators read (without it the target has only the white-box evaluator); `seed` (default 0 for
the target, 1 for the substitute); `tiny` = a seconds-long version on sklearn digits for tests.

The protocol is MadryLab's MNIST challenge (REFERENCES.md: L-inf ε = 0.3 of the pixel range, PGD-40
of step 0.01 with a random start), scaled to 2 CPU cores: the target trains with PGD-7 (step
ε/4) on half of each batch for 4 epochs; the substitute (another seed and width, no adversarial
training) 2 epochs. Runtime on 2 CPU cores: see experiments/noisy_defense/README.md.
"""

import ml_collections

from configs.common import base_config, brief_run, check_choice, parse_arg

SNRS = (5.0, 10.0, 15.0, 20.0, 30.0, float("inf"))  # inference SNR grid of the defense (dB)
ATTACK = dict(epsilon=0.3, step_size=0.01, steps=40)  # MadryLab's MNIST PGD (pixel-range units)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """Keys: role (target | substitute), substitute (its workdir), seed (-1 = the role's default),
  tiny."""
  args = parse_arg(arg, role="target", substitute="", seed=-1, tiny=False)
  check_choice("role", args.role, ("target", "substitute"))
  target = args.role == "target"
  c = base_config()
  c.seed = args.seed if args.seed >= 0 else (0 if target else 1)
  c.data.source = "idx:../shared/data/mnist"  # the original IDX files (or tfds:mnist)
  c.data.batch_size = 128           # training images per step
  c.data.eval_batch_size = 500      # test images per evaluation batch
  c.model = ml_collections.ConfigDict()
  c.model.name = "lenet"            # conv blocks -> dense layers (freqnoise.models)
  # Madry's MNIST model is (32, 64) + 1024; a quarter of its conv multiply-adds fits 2 CPU cores.
  c.model.conv_features = (16, 32) if target else (8, 16)  # the substitute: another architecture
  c.model.kernel_size = 5           # conv kernel size
  c.model.dense_features = (512,) if target else (256,)  # hidden dense widths
  c.model.pool = "max"              # 2x2 max pooling after each conv (Madry's model)
  c.optimizer.learning_rate = 1e-3  # Adam, cosine to 0
  c.num_epochs = 4 if target else 2  # 1,872 / 936 steps of 128
  c.log_every = 50                  # steps between progress lines
  c.eval_every = 100_000            # the test set is evaluated once, at the end
  c.checkpoint_every = 250          # steps between checkpoints
  # Output noise of every product at inference (kind/power for the SNR grids below); training clean.
  c.eval_noise.snr_db = float("inf")
  if target:
    c.adversarial.epsilon = ATTACK["epsilon"]  # PGD adversarial training (Madry et al. 2018) ...
    c.adversarial.steps = 7                    # ... with 7 steps of ε/4 (CPU budget; Madry: 40 x 0.01)
    c.adversarial.step_size = ATTACK["epsilon"] / 4
    c.adversarial.fraction = 0.5               # on half of each batch (Madry: all of it)
    block = lambda **kw: ml_collections.ConfigDict(dict(
        type="adversarial", snrs_db=SNRS, num_draws=16, batch_size=500, **kw))
    if args.substitute:  # black box: the substitute's stored sets
      c.evals.blackbox_pgd = block(source=f"{args.substitute}/pgd40.npz", output="blackbox_pgd.json")
      c.evals.blackbox_fgsm = block(source=f"{args.substitute}/fgsm.npz", output="blackbox_fgsm.json")
    # white box with expectation over the noise: PGD-40 against the noisy target itself
    c.evals.whitebox_eot = block(**ATTACK, eot_draws=4, limit=500, output="whitebox_eot.json")
    c.evals.whitebox_eot.snrs_db = (10.0, 20.0, float("inf"))
  else:
    craft = lambda **kw: ml_collections.ConfigDict(dict(type="craft", limit=2000, **kw))
    c.evals.pgd40 = craft(**ATTACK, output="pgd40.npz")
    c.evals.fgsm = craft(method="fgsm", epsilon=ATTACK["epsilon"], output="fgsm.npz")
  if args.tiny:
    c.data.source = "digits"        # sklearn's 8x8 digits, bundled (no download)
    c.data.batch_size = 32          # small batches
    c.data.eval_batch_size = 64     # small evaluation batches
    c.model.conv_features = (4, 8)  # 4 and 8 filters
    c.model.kernel_size = 3         # 3x3 kernels on 8x8 images
    c.model.dense_features = (16,)  # 16 hidden units
    c.adversarial.steps = min(c.adversarial.steps, 2)  # 2 PGD steps while training
    brief_run(c, 10)                # 10 steps, logged twice, evaluated and checkpointed at the end
    for name, block in c.evals.items():
      if "steps" in block:
        block.steps = min(block.steps, 3)  # at most 3 attack steps
      block.limit = 64              # 64 test images
      if "num_draws" in block:
        block.num_draws = 4         # 4 draws per SNR
        block.snrs_db = (10.0, float("inf"))
  return c
