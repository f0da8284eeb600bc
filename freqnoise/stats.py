"""Paired comparisons over seeds: is variant A better than variant B, and by how much?

Seed s of A and seed s of B share their initialisation seed and data order, so the per-seed
differences d_s = A_s − B_s carry the comparison; their spread is smaller than either variant's
own spread when seeds move both variants alike. `paired_difference` reports the mean difference
with two 95% intervals — paired Student t (scipy.stats.ttest_rel's) and a paired percentile
bootstrap (resampling seeds) — beside each variant's mean ± std and n. `seeds_for_power` says how
many seeds a difference of a given size would need to be told from 0 with the observed spread.

    result = paired_difference({0: 65.4, 1: 63.5}, {0: 64.5, 1: 66.3})
    result.mean, result.t_ci95, result.bootstrap_ci95, result.n
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping

import numpy as np
import scipy.stats


@dataclasses.dataclass(frozen=True)
class PairedDifference:
  """A − B over the seeds both variants have; intervals are 95%, in the values' unit."""
  seeds: tuple[int, ...]
  mean: float                    # mean over seeds of A_s − B_s
  std: float                     # sample std (ddof 1) of the differences
  t_ci95: tuple[float, float]    # paired Student t interval of the mean difference
  bootstrap_ci95: tuple[float, float]  # percentile interval of the mean over resampled seeds
  mean_a: float
  std_a: float
  mean_b: float
  std_b: float

  @property
  def n(self) -> int:
    return len(self.seeds)

  def to_json(self) -> dict:
    return {**dataclasses.asdict(self), "n": self.n}


def _paired(a: Mapping[int, float], b: Mapping[int, float]) -> tuple[tuple, np.ndarray, np.ndarray]:
  for name, values in (("a", a), ("b", b)):
    if not isinstance(values, Mapping):
      raise TypeError(f"{name} must map seed -> value, got {type(values).__name__}")
    bad = {s: v for s, v in values.items() if not math.isfinite(float(v))}
    if bad:
      raise ValueError(f"{name} has non-finite values at seeds {sorted(bad)}: {bad}")
  seeds = tuple(sorted(set(a) & set(b)))
  if len(seeds) < 2:
    raise ValueError(f"a paired comparison needs >= 2 seeds that both variants have; a has "
                     f"{sorted(a)}, b has {sorted(b)}")
  return (seeds, np.array([float(a[s]) for s in seeds]), np.array([float(b[s]) for s in seeds]))


def paired_t_interval(d: np.ndarray, level: float = 0.95) -> tuple[float, float]:
  """Student t interval of the mean of the paired differences `d` (n >= 2)."""
  n = len(d)
  half = scipy.stats.t.ppf(0.5 + level / 2, n - 1) * np.std(d, ddof=1) / math.sqrt(n)
  return float(np.mean(d) - half), float(np.mean(d) + half)


def paired_bootstrap_interval(d: np.ndarray, *, resamples: int = 10_000, seed: int = 0,
                              level: float = 0.95) -> tuple[float, float]:
  """Percentile interval of the mean of `d` resampled with replacement (seeds as the unit),
  `resamples` draws from `np.random.default_rng(seed)`: the same numbers on every run."""
  idx = np.random.default_rng(seed).integers(0, len(d), size=(resamples, len(d)))
  means = d[idx].mean(axis=1)
  lo, hi = np.quantile(means, [0.5 - level / 2, 0.5 + level / 2])
  return float(lo), float(hi)


def paired_difference(a: Mapping[int, float], b: Mapping[int, float], *,
                      resamples: int = 10_000, seed: int = 0) -> PairedDifference:
  """A − B over the seeds both have (at least 2; seeds only one variant has are left out)."""
  seeds, va, vb = _paired(a, b)
  d = va - vb
  return PairedDifference(
      seeds=seeds, mean=float(d.mean()), std=float(np.std(d, ddof=1)),
      t_ci95=paired_t_interval(d), bootstrap_ci95=paired_bootstrap_interval(
          d, resamples=resamples, seed=seed),
      mean_a=float(va.mean()), std_a=float(np.std(va, ddof=1)),
      mean_b=float(vb.mean()), std_b=float(np.std(vb, ddof=1)))


def seeds_for_power(std_difference: float, effect: float, *, power: float = 0.8,
                    level: float = 0.95) -> int:
  """Seeds a paired t test needs to tell `effect` from 0 (two-sided, at `level`) with probability
  `power`, when the per-seed differences have standard deviation `std_difference`: the smallest
  n with P(|T| > t_crit) >= power under the noncentral t with n − 1 degrees of freedom."""
  if not (std_difference > 0 and effect != 0):
    raise ValueError(f"need std_difference > 0 and effect != 0, got {std_difference}, {effect}")
  for n in range(2, 100_000):
    df, nc = n - 1, abs(effect) / std_difference * math.sqrt(n)
    crit = scipy.stats.t.ppf(0.5 + level / 2, df)
    if scipy.stats.nct.sf(crit, df, nc) + scipy.stats.nct.cdf(-crit, df, nc) >= power:
      return n
  raise ValueError("more than 100,000 seeds: the effect is too small for its spread")


def mean_interval(values, level: float = 0.95) -> tuple[float, float]:
  """Student t interval of the mean of independent `values` (e.g. one per seed; n >= 2)."""
  v = np.asarray(values, dtype=float)
  if v.ndim != 1 or len(v) < 2 or not np.all(np.isfinite(v)):
    raise ValueError(f"need >= 2 finite values in a 1-d sequence, got {v!r}")
  return paired_t_interval(v, level)


def proportion_interval(successes: int, trials: int, level: float = 0.95) -> tuple[float, float]:
  """Wilson score interval of a proportion, e.g. accuracy as `successes` correct of `trials`
  test images (the binomial sampling of the test set, not the spread over seeds)."""
  if not (isinstance(trials, (int, np.integer)) and trials > 0
          and isinstance(successes, (int, np.integer)) and 0 <= successes <= trials):
    raise ValueError(f"need integers 0 <= successes <= trials, trials > 0; got {successes}, "
                     f"{trials}")
  z = scipy.stats.norm.ppf(0.5 + level / 2)
  p, n = successes / trials, trials
  centre = (p + z * z / (2 * n)) / (1 + z * z / n)
  half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
  return float(centre - half), float(centre + half)
