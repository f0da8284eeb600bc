"""Noise at inference as a defense (paper 2, second half): an adversarially trained target, a
naturally trained substitute (another seed and width) that crafts black-box transfer sets, and
the target's accuracy on them over inference SNRs x noise draws (with voting), beside EOT
white-box PGD against the noisy target itself.

Commands (substitute first: its evaluators write the transfer sets the target reads):
  python -m freqnoise.main --config=configs/noisy_defense.py:data=mnist,role=substitute \
      --workdir=/tmp/defense/mnist/substitute
  python -m freqnoise.main \
      --config=configs/noisy_defense.py:data=mnist,role=target,substitute=/tmp/defense/mnist/substitute \
      --workdir=/tmp/defense/mnist/target
  (or both: experiments/noisy_defense/run.sh mnist|cifar10)
Arguments (`configs/noisy_defense.py:KEY=VALUE,...`): `data` = mnist | cifar10 (default mnist);
`role` = target | substitute (default target); `substitute` = the substitute's workdir, whose
pgd.npz / fgsm.npz the target's black-box evaluators read (without it the target has only the
white-box evaluator); `seed` (default 0 for the target, 1 for the substitute); `train_snr` =
the target's training noise in dB (default inf: adversarial training only; e.g. 20 trains it to
tolerate the inference noise); `tiny` = a seconds-long version on sklearn digits for tests.

Protocols (REFERENCES.md, MadryLab's challenges), scaled to 2 CPU cores:
  mnist    ε = 0.3 of the pixel range; attacks PGD-40 of step 0.01 (random start) and FGSM. The
           target trains with PGD-7 of step ε/4 on half of each batch for 4 epochs (Madry: PGD-40
           on every example, 100k steps); LeNet (16, 32) + 512 with max pooling (Madry: (32, 64)
           + 1024); the substitute (8, 16) + 256, 2 epochs.
  cifar10  ε = 8/255; attacks PGD-10 of step 2/255 and FGSM. The target trains with PGD-3 of
           step ε/2 on half of each batch for 3 epochs (Madry: PGD-7 on a wide ResNet, 80k
           steps); a (16, 32, 64) 3x3 CNN + 128 (3 M multiply-adds); substitute (8, 16, 32) + 64,
           2 epochs.
Runtime on 2 CPU cores and the numbers: experiments/noisy_defense/README.md.
"""

import ml_collections

from configs.common import (base_config, check_choice, parse_arg, shared_data,
                            shrink_to_tiny_cnn)

SNRS = (5.0, 10.0, 15.0, 20.0, 30.0, float("inf"))  # inference SNR grid of the defense (dB)
# Per dataset: data source (kind, folder in ../shared/data), attack (pixel-range units),
# training PGD, epochs, target / substitute model. Everything else is shared.
DATA = {
    "mnist": dict(
        source=("idx", "mnist"), attack=dict(epsilon=0.3, step_size=0.01, steps=40),
        train_steps=7, train_step=0.3 / 4, epochs=(4, 2), kernel=5,
        target=((16, 32), (512,)), substitute=((8, 16), (256,))),
    "cifar10": dict(
        source=("imagefolder", "cifar10-jpeg"),
        attack=dict(epsilon=8 / 255, step_size=2 / 255, steps=10),
        train_steps=3, train_step=4 / 255, epochs=(3, 2), kernel=3,
        target=((16, 32, 64), (128,)), substitute=((8, 16, 32), (64,))),
}


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """Keys: data (mnist | cifar10), role (target | substitute), substitute (its workdir), seed
  (-1 = the role's default), train_snr (the target's training noise, dB), tiny; see the module
  docstring."""
  args = parse_arg(arg, data="mnist", role="target", substitute="", seed=-1, train_snr=float("inf"),
                   tiny=False)
  check_choice("data", args.data, tuple(DATA))
  check_choice("role", args.role, ("target", "substitute"))
  d, target = DATA[args.data], args.role == "target"
  attack = d["attack"]
  c = base_config()
  c.seed = args.seed if args.seed >= 0 else (0 if target else 1)  # substitute: another seed
  kind, folder = d["source"]
  c.data.source = f"{kind}:{shared_data(folder)}"  # original files (or tfds:mnist / tfds:cifar10)
  c.data.batch_size = 128           # training images per step
  c.data.eval_batch_size = 500      # test images per evaluation batch
  if args.data == "cifar10":
    c.data.augment.crop_padding = 4  # random 32x32 crops of the 4-pixel zero-padded image
    c.data.augment.flip = True       # random horizontal flips
  c.model = ml_collections.ConfigDict()
  c.model.name = "lenet"            # conv blocks -> dense layers (freqnoise.models)
  conv, dense = d["target"] if target else d["substitute"]  # the substitute: another architecture
  c.model.conv_features = conv      # filters of the conv blocks
  c.model.kernel_size = d["kernel"]  # conv kernel size
  c.model.dense_features = dense    # hidden dense widths
  c.model.pool = "max"              # 2x2 max pooling after each conv (Madry's models)
  c.optimizer.learning_rate = 1e-3  # Adam, cosine to 0
  c.num_epochs = d["epochs"][0 if target else 1]  # epochs of 128-image steps
  c.log_every = 50                  # steps between progress lines
  c.eval_every = 100_000            # the test set is evaluated once, at the end
  c.checkpoint_every = 250          # steps between checkpoints
  # Output noise of every product at inference (its kind / power; the SNRs come from the grids).
  c.eval_noise.snr_db = float("inf")
  if target:
    c.adversarial.epsilon = attack["epsilon"]  # PGD adversarial training (Madry et al. 2018) ...
    c.adversarial.steps = d["train_steps"]     # ... with fewer, longer steps than the attacks ...
    c.adversarial.step_size = d["train_step"]  # ... (pixel-range fraction) ...
    c.adversarial.fraction = 0.5               # ... on half of each batch (Madry: all of it)
    c.train_noise.snr_db = args.train_snr      # output noise while training (inf = none)
    c.train_noise.power_gradient = True        # gradient through the noise power (NoiseConfig)
    block = lambda **kw: ml_collections.ConfigDict(dict(
        type="adversarial", snrs_db=SNRS, num_draws=16, batch_size=500, **kw))
    if args.substitute:  # black box: the substitute's stored sets
      c.evals.blackbox_pgd = block(source=f"{args.substitute}/pgd.npz",  # its PGD set
                                   output="blackbox_pgd.json")
      c.evals.blackbox_fgsm = block(source=f"{args.substitute}/fgsm.npz",  # its FGSM set
                                    output="blackbox_fgsm.json")
    # white box with expectation over the noise: the attack's PGD against the noisy target itself
    # (250 images, 2 SNRs: PGD-40 x 4 draws costs ~5 min per SNR on 2 shared CPU cores)
    c.evals.whitebox_eot = block(**attack, eot_draws=4, limit=250, output="whitebox_eot.json")
    c.evals.whitebox_eot.snrs_db = (10.0, float("inf"))  # 10 dB and noiseless
  else:
    craft = lambda **kw: ml_collections.ConfigDict(dict(type="craft", limit=2000, **kw))
    c.evals.pgd = craft(**attack, output="pgd.npz")  # the PGD transfer set
    c.evals.fgsm = craft(method="fgsm", epsilon=attack["epsilon"], output="fgsm.npz")  # FGSM set
  if args.tiny:
    shrink_to_tiny_cnn(c)           # digits, a 4/8-filter CNN, 10 steps
    c.model.kernel_size = 3         # 3x3 kernels on 8x8 images
    c.adversarial.steps = min(c.adversarial.steps, 2)  # 2 PGD steps while training
    for block in c.evals.values():
      if "steps" in block:
        block.steps = min(block.steps, 3)  # at most 3 attack steps
      block.limit = 64              # 64 test images
      if "num_draws" in block:
        block.num_draws = 4         # 4 draws per SNR
        block.snrs_db = (10.0, float("inf"))
  return c
