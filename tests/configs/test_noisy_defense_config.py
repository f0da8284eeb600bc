"""configs/noisy_defense.py: the substitute crafts the transfer sets, the target reads them."""

import json

import pytest

from configs import noisy_defense
from freqnoise.train import train_and_evaluate


@pytest.mark.parametrize("data", ["mnist", "cifar10"])
def test_variants_follow_the_protocol(data):
  target = noisy_defense.get_config(f"data={data},substitute=/sub")
  substitute = noisy_defense.get_config(f"data={data},role=substitute")
  attack = noisy_defense.DATA[data]["attack"]
  assert target.adversarial.epsilon == attack["epsilon"] and target.adversarial.fraction == 0.5
  assert substitute.adversarial.epsilon == 0.0 and (target.seed, substitute.seed) == (0, 1)
  assert target.model.conv_features != substitute.model.conv_features  # another architecture
  assert target.evals.blackbox_pgd.source == "/sub/pgd.npz"
  assert substitute.evals.pgd.steps == attack["steps"] and substitute.evals.fgsm.method == "fgsm"
  assert "blackbox_pgd" not in noisy_defense.get_config(f"data={data}").evals
  with pytest.raises(ValueError, match="data='svhn' is not one of: mnist, cifar10"):
    noisy_defense.get_config("data=svhn")


def test_tiny_substitute_then_target(tmp_path):
  sub = train_and_evaluate(noisy_defense.get_config("role=substitute,tiny"), str(tmp_path / "sub"))
  assert sub["pgd/examples"] == sub["fgsm/examples"] == 64  # (10 steps: the attack itself is
  # checked on a trained model in tests/evaluators/test_defense.py)
  target = noisy_defense.get_config(f"substitute={tmp_path / 'sub'},tiny")
  result = train_and_evaluate(target, str(tmp_path / "target"))
  for name in ("blackbox_pgd", "blackbox_fgsm", "whitebox_eot"):
    saved = json.loads((tmp_path / "target" / f"{name}.json").read_text())
    assert len(saved["adversarial"]["accuracy"]) == 2  # SNRs 10 dB and inf
    assert 0.0 <= result[f"{name}/snr_inf/mean"] <= 1.0
