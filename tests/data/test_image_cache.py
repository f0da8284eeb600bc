"""freqnoise/data/image_cache.py: the decoded-image cache stays within FREQNOISE_CACHE_MAX_GB by
evicting the least recently used file, says where it is, and a bad bound fails before decoding."""

import os

import numpy as np
import pytest

from freqnoise.data import image_cache
from freqnoise.data.images import load_image_folder
from tests.conftest import write_image_folder


def _file(folder, name, size, mtime):
  path = folder / name
  path.write_bytes(b"x" * size)
  os.utime(path, ns=(mtime, mtime))
  return str(path)


def test_prune_evicts_least_recently_used_and_keeps_the_new_file(tmp_path):
  old = _file(tmp_path, "imagefolder-a.npz", 400, 1_000)
  mid = _file(tmp_path, "imagefolder-b.npz", 300, 2_000)
  new = _file(tmp_path, "imagefolder-c.npz", 200, 3_000)
  other = _file(tmp_path, "notes.npz", 10_000, 500)  # not a cache file: never touched
  assert [e[0] for e in image_cache.entries(str(tmp_path))] == [new, mid, old]
  assert image_cache.prune(str(tmp_path), 1_000) == []  # 900 bytes fit
  assert image_cache.prune(str(tmp_path), 600, keep=old) == [mid]  # old (kept) + new = 600
  assert sorted(os.listdir(tmp_path)) == ["imagefolder-a.npz", "imagefolder-c.npz", "notes.npz"]
  assert image_cache.prune(str(tmp_path), 0, keep=new) == [old] and os.path.isfile(other)
  assert image_cache.describe(str(tmp_path), 600) == (
      f"1 file, 0.00 GB of the 6e-07 GB bound (FREQNOISE_CACHE_MAX_GB) in {tmp_path}")


@pytest.mark.parametrize("text, expected", [("", int(10e9)), ("2.5", int(2.5e9)), ("0", 0)])
def test_the_bound_comes_from_the_environment(monkeypatch, text, expected):
  monkeypatch.setenv("FREQNOISE_CACHE_MAX_GB", text)
  assert image_cache.max_bytes() == expected


def test_folders_at_two_sizes_share_the_bound_least_recently_used_first(tmp_path, monkeypatch,
                                                                         capsys):
  root = str(write_image_folder(tmp_path / "data"))
  cache = tmp_path / "cache"
  load = lambda size: load_image_folder(root, test_split="val", image_size=size,
                                        cache_dir=str(cache))
  # 48 images of 16x16x3 uint8 (36,864 bytes) + labels and names; of 8x8, a quarter of that
  monkeypatch.setenv("FREQNOISE_CACHE_MAX_GB", str(40_000 / 1e9))
  first, _, _ = load(8)
  out = capsys.readouterr().out
  (small,) = cache.glob("imagefolder-*.npz")
  assert f"cached afterwards in {small}" in out and f"cached in {small}" in out
  load(16)
  assert len(list(cache.glob("*.npz"))) == 1  # 16x16 alone fits: 8x8 evicted
  assert "removed 1 least recently used" in capsys.readouterr().out
  again, _, _ = load(16)  # from the cache, which says where it is
  assert f"from the cache {next(cache.glob('*.npz'))} (1 file, 0.00 GB of the 4e-05 GB" in \
      capsys.readouterr().out
  monkeypatch.setenv("FREQNOISE_CACHE_MAX_GB", str(60_000 / 1e9))
  load(8)  # both fit now
  (medium,) = [p for p in cache.glob("*.npz") if p != small]
  monkeypatch.setenv("FREQNOISE_CACHE_MAX_GB", str(40_000 / 1e9))
  os.utime(small, ns=(1, 1))  # 8x8 is the least recently used file...
  np.testing.assert_array_equal(load(8)[0]["image"], first["image"])  # ...until this read
  load(12)  # 12x12 (20,736 bytes) + 8x8 fit; 16x16, now the least recently used, is evicted
  assert small.is_file() and not medium.is_file() and len(list(cache.glob("*.npz"))) == 2
  capsys.readouterr()


def test_decoded_images_larger_than_the_bound_are_not_cached(tmp_path, monkeypatch, capsys):
  root = str(write_image_folder(tmp_path / "data"))
  monkeypatch.setenv("FREQNOISE_CACHE_MAX_GB", "0")
  load_image_folder(root, test_split="val", cache_dir=str(tmp_path / "cache"))
  assert not (tmp_path / "cache").exists()
  assert "not cached: the decoded images take 0.00 GB, more than the cache's 0 GB bound" in \
      capsys.readouterr().out


def test_a_bad_bound_is_an_error_before_decoding(tmp_path, monkeypatch, capsys):
  root = str(write_image_folder(tmp_path / "data"))
  monkeypatch.setenv("FREQNOISE_CACHE_MAX_GB", "ten")
  with pytest.raises(ValueError, match=r"FREQNOISE_CACHE_MAX_GB='ten' must be a size in GB >= 0"):
    load_image_folder(root, test_split="val", cache_dir=str(tmp_path / "cache"))
  assert "decoding" not in capsys.readouterr().out
