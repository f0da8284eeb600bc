"""freqnoise.input_stats: saved statistics of letterboxed (detection) splits."""

import numpy as np
import pytest

from freqnoise import input_stats
from freqnoise.data.dataset import ArrayDataset


class MeanOnly:
  """A transform stand-in whose fit is the content mean (what the test can check by hand)."""

  def fit(self, x, seed=0, size=None):
    if size is None:
      return {"mean": np.asarray(x, np.float64).mean(axis=(0, 1, 2))}
    return {"mean": np.mean([img[:h, :w].mean(axis=(0, 1)) for img, (h, w) in zip(x, size)],
                            axis=0)}


def _letterboxed() -> ArrayDataset:
  image = np.zeros((2, 4, 4, 3), np.float32)
  image[:, :2, :3] = 10.0  # content 2 x 3, padding 0
  return ArrayDataset({"image": image, "size": np.array([[2, 3], [2, 3]])})


def test_letterboxed_statistics_are_marked_and_reloaded_without_the_mark(tmp_path):
  stats = input_stats.load_or_fit(MeanOnly(), _letterboxed(), "image", 0, str(tmp_path))
  np.testing.assert_array_equal(stats["mean"], [10.0, 10.0, 10.0])
  with np.load(tmp_path / input_stats.FILE) as z:
    assert bool(z[input_stats.CONTENT_MARK])
  again = input_stats.load_or_fit(MeanOnly(), _letterboxed(), "image", 0, str(tmp_path))
  assert set(again) == {"mean"} and np.array_equal(again["mean"], stats["mean"])


def test_statistics_fitted_over_the_padding_before_the_fix_are_refused(tmp_path):
  # A detection workdir from before issue 24 #6 holds statistics without the mark.
  np.savez(tmp_path / input_stats.FILE, mean=np.full(3, 3.75))
  with pytest.raises(ValueError, match=r"fitted over the letterbox padding.*delete it to refit"):
    input_stats.load_or_fit(MeanOnly(), _letterboxed(), "image", 0, str(tmp_path))
  # an image split without `size` keeps loading unmarked files as before
  plain = ArrayDataset({"image": np.ones((2, 4, 4, 3), np.float32)})
  assert input_stats.load_or_fit(MeanOnly(), plain, "image", 0, str(tmp_path))["mean"][0] == 3.75
