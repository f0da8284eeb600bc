"""Paired statistics over seeds against SciPy, hand-computed bootstraps and published power."""

import numpy as np
import pytest
import scipy.stats

from freqnoise import stats

A = {0: 65.40, 1: 63.48, 2: 64.10, 3: 66.02, 4: 64.71}
B = {0: 64.54, 1: 66.34, 2: 63.20, 3: 65.11, 4: 63.95, 9: 70.0}  # seed 9 has no partner


def test_the_t_interval_is_scipys_ttest_rel():
  result = stats.paired_difference(A, B)
  seeds = sorted(A)
  expected = scipy.stats.ttest_rel([A[s] for s in seeds], [B[s] for s in seeds])
  low, high = expected.confidence_interval(0.95)
  assert result.seeds == (0, 1, 2, 3, 4) and result.n == 5
  np.testing.assert_allclose(result.t_ci95, (low, high), rtol=1e-12)
  d = np.array([A[s] - B[s] for s in seeds])
  assert result.mean == pytest.approx(d.mean(), abs=1e-12)
  assert result.std == pytest.approx(d.std(ddof=1), abs=1e-12)
  assert result.mean_a == pytest.approx(np.mean([A[s] for s in seeds]), abs=1e-12)
  assert result.std_b == pytest.approx(np.std([B[s] for s in seeds], ddof=1), abs=1e-12)


def test_the_bootstrap_of_two_seeds_is_the_hand_computed_one():
  # d = (1, 3): resampled means are 1, 2, 3 with probabilities 1/4, 1/2, 1/4, so the 2.5% and
  # 97.5% quantiles are exactly 1 and 3.
  assert stats.paired_bootstrap_interval(np.array([1.0, 3.0])) == (1.0, 3.0)
  # d = (0, 0, 3): means are 0, 1, 2, 3 with probabilities 8, 12, 6, 1 (/27): 2.5% → 0, 97.5% → 3
  # (P(mean = 3) = 1/27 = 3.7% > 2.5%).
  assert stats.paired_bootstrap_interval(np.array([0.0, 0.0, 3.0])) == (0.0, 3.0)
  # the same numbers on every run, other numbers with another seed's resamples
  d = np.random.default_rng(0).normal(size=12)
  first = stats.paired_bootstrap_interval(d)
  assert first == stats.paired_bootstrap_interval(d)
  assert first != stats.paired_bootstrap_interval(d, seed=1)
  assert min(d) <= first[0] < np.mean(d) < first[1] <= max(d)


def test_seeds_for_power_matches_the_published_one_sample_t_table():
  # Cohen (1988) / G*Power, one-sample (= paired) t, two-sided α = 0.05, power 0.8:
  # effect size d = 1.0 needs n = 10; d = 0.5 needs n = 34.
  assert stats.seeds_for_power(1.0, 1.0) == 10
  assert stats.seeds_for_power(2.0, 1.0) == 34
  assert stats.seeds_for_power(2.0, -1.0) == 34


@pytest.mark.parametrize("a,b,message", [
    ({0: 1.0}, {0: 2.0}, r"needs >= 2 seeds that both variants have; a has \[0\], b has \[0\]"),
    ({0: 1.0, 1: 2.0}, {2: 1.0, 3: 2.0}, r"needs >= 2 seeds that both"),
    ({0: float("nan"), 1: 2.0}, {0: 1.0, 1: 2.0}, r"a has non-finite values at seeds \[0\]"),
    ([1.0, 2.0], {0: 1.0, 1: 2.0}, r"a must map seed -> value, got list"),
])
def test_bad_input_is_named(a, b, message):
  with pytest.raises((ValueError, TypeError), match=message):
    stats.paired_difference(a, b)


@pytest.mark.parametrize("k,n", [(9902, 10000), (0, 50), (50, 50), (17, 40)])
def test_proportion_interval_is_scipys_wilson_interval(k, n):
  ref = scipy.stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
  np.testing.assert_allclose(stats.proportion_interval(k, n), (ref.low, ref.high), rtol=1e-12,
                             atol=1e-15)


def test_mean_interval_is_scipys_t_interval():
  v = [64.54, 66.34, 65.1, 63.9]
  ref = scipy.stats.t.interval(0.95, len(v) - 1, loc=np.mean(v), scale=scipy.stats.sem(v))
  np.testing.assert_allclose(stats.mean_interval(v), ref, rtol=1e-12)


@pytest.mark.parametrize("bad", [(11, 10), (-1, 10), (1, 0), (0.5, 10)])
def test_proportion_interval_refuses_impossible_counts(bad):
  with pytest.raises(ValueError, match="successes"):
    stats.proportion_interval(*bad)
