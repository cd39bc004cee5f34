"""Aggregates and their CIs against rliable itself, and the vectorised bootstrap against a per-resample loop."""

import numpy as np
import pytest
import scipy.stats
from rliable import library as rly
from rliable import metrics

from analysis import stats
from analysis.bootstrap import Scores, interval_estimate, resample_counts

RLIABLE = {
    "iqm": metrics.aggregate_iqm,
    "mean": metrics.aggregate_mean,
    "median": metrics.aggregate_median,
    "optimality_gap": metrics.aggregate_optimality_gap,
}


def _data(shape, seed=0):
    # Gamma-distributed normalised scores with heavy right tail, like Atari HNS
    return np.random.default_rng(seed).gamma(0.8, 0.8, size=shape)


@pytest.mark.parametrize("name", list(RLIABLE))
def test_point_estimates_equal_rliable(name):
    scores = _data((5, 12))
    ours = stats.aggregate(Scores.from_rliable(scores), name, reps=10)[0]
    assert ours[0] == pytest.approx(RLIABLE[name](scores), abs=1e-9)
    curve = _data((4, 7, 6), seed=1)
    ours_curve = stats.aggregate(Scores.from_rliable(curve), name, reps=10)[0]
    theirs = [RLIABLE[name](curve[..., j]) for j in range(curve.shape[-1])]
    np.testing.assert_allclose(ours_curve, theirs, rtol=0, atol=1e-9)


def _monte_carlo_check(ours_runs, theirs, label):
    """rliable's endpoints must lie within 4.5 Monte-Carlo standard deviations of ours (both noisy)."""
    ours_runs = np.asarray(ours_runs)
    centre, spread = ours_runs.mean(axis=0), ours_runs.std(axis=0, ddof=1)
    bound = 4.5 * spread * np.sqrt(1 + 1 / len(ours_runs)) + 1e-12
    assert np.all(np.abs(theirs - centre) <= bound), f"{label}: rliable {theirs} vs ours {centre} +- {spread}"


@pytest.mark.parametrize("name", ["iqm", "mean", "median", "optimality_gap"])
def test_confidence_intervals_agree_with_rliable(name):
    scores, reps = _data((5, 10), seed=2), 3000
    np.random.seed(0)  # rliable draws from numpy's global generator
    _, theirs = rly.get_interval_estimates({"a": scores}, lambda x: np.array([RLIABLE[name](x)]), reps=reps)
    runs = [stats.aggregate(Scores.from_rliable(scores), name, reps=reps, seed=s)[1:] for s in range(12)]
    _monte_carlo_check([np.ravel(r) for r in runs], theirs["a"].ravel(), name)


def test_curve_and_improvement_and_profile_cis_agree_with_rliable():
    curve, reps = _data((5, 8, 3), seed=3), 1000
    np.random.seed(1)
    _, theirs = rly.get_interval_estimates(
        {"a": curve}, lambda x: np.array([metrics.aggregate_iqm(x[..., j]) for j in range(3)]), reps=reps
    )
    runs = [
        np.ravel(stats.aggregate(Scores.from_rliable(curve), "iqm", reps=reps, seed=s)[1:]) for s in range(10)
    ]
    _monte_carlo_check(runs, theirs["a"].ravel(), "iqm curve")

    x, y = _data((5, 8), seed=4), _data((4, 8), seed=5) * 1.3
    point, theirs = rly.get_interval_estimates(
        {"xy": [x, y]}, lambda a, b: np.array([metrics.probability_of_improvement(a, b)]), reps=reps
    )
    ours = [
        stats.probability_of_improvement(Scores.from_rliable(x), Scores.from_rliable(y), reps, seed=s)
        for s in range(10)
    ]
    assert ours[0][0] == pytest.approx(point["xy"][0], abs=1e-9)
    _monte_carlo_check([o[1:] for o in ours], theirs["xy"].ravel(), "probability of improvement")

    taus = np.linspace(0, 2, 5)
    profile, theirs = rly.create_performance_profile({"a": x}, taus, reps=reps)
    tables = [stats.profile_table({"a": Scores.from_rliable(x)}, taus, reps=reps, seed=s) for s in range(10)]
    np.testing.assert_allclose(tables[0]["estimate"], profile["a"], atol=1e-9)
    _monte_carlo_check([np.r_[t["lower"], t["upper"]] for t in tables], theirs["a"].ravel(), "profile")


def _ragged():
    rng = np.random.default_rng(7)
    return Scores.from_tasks(
        {f"t{m}": rng.gamma(0.8, 0.8, size=(n, 3)) for m, n in enumerate([2, 5, 3, 7, 4])}
    )


def test_resamples_keep_each_tasks_run_count_and_draw_runs_uniformly():
    sample = _ragged()
    counts = resample_counts(sample.runs_per_task, 20_000, np.random.default_rng(0))
    starts = np.r_[0, np.cumsum(sample.runs_per_task)]
    for m, n in enumerate(sample.runs_per_task):
        block = counts[:, starts[m] : starts[m + 1]]
        assert np.all(block.sum(axis=1) == n)
        np.testing.assert_allclose(block.mean(axis=0), 1.0, atol=0.05)  # each run drawn once on average


def _replicated(values, task, runs_per_task):
    """Each run of task m repeated L / n_m times (L = lcm of run counts): the equal-task-weight distribution
    written out as an unweighted sample, so plain unweighted estimators give the weighted ones."""
    copies = np.lcm.reduce(runs_per_task) // runs_per_task
    return np.repeat(values, copies[task], axis=0)


@pytest.mark.parametrize("name", list(RLIABLE))
def test_vectorised_statistics_equal_a_loop_over_expanded_resamples(name):
    """On ragged data, each resample's statistic equals the estimator applied to that resample written out
    run by run with every task weighing equally (IQM/optimality gap on runs replicated to equal task mass,
    mean/median of per-task means)."""
    sample = _ragged()
    n = sample.runs_per_task
    lcm = np.lcm.reduce(n)
    cut = (
        int(0.25 * n.sum()) * len(n) * lcm // n.sum()
    )  # floor(N/4)/N of the replicated mass, an integer here
    assert cut * n.sum() == int(0.25 * n.sum()) * len(n) * lcm
    counts = resample_counts(n, 40, np.random.default_rng(1))
    vectorised = stats._aggregate(name, n)(sample.values, counts)
    task = sample.task_of_run
    for b in range(len(counts)):
        expanded = np.repeat(sample.values, counts[b].astype(int), axis=0)
        expanded_task = np.repeat(task, counts[b].astype(int))
        replicated = _replicated(expanded, expanded_task, n)
        if name == "iqm":
            ranked = np.sort(replicated, axis=0)
            expected = ranked[cut : len(ranked) - cut].mean(axis=0)
        elif name == "optimality_gap":
            expected = 1 - np.minimum(replicated, 1).mean(axis=0)
        else:
            means = np.stack([expanded[expanded_task == m].mean(axis=0) for m in range(len(sample.tasks))])
            expected = means.mean(axis=0) if name == "mean" else np.median(means, axis=0)
        np.testing.assert_allclose(vectorised[b], expected, rtol=1e-12, atol=1e-12)


def test_ragged_tasks_weigh_equally_in_every_aggregate():
    """A task with many runs must not pull the IQM, gap or profile towards itself: doubling one task's runs
    (same values twice) changes nothing, and gap = 1 - mean when no score exceeds 1. Run totals 28 and 32 are
    multiples of 4, so the IQM cuts exactly a quarter of the mass at each end in both."""
    rng = np.random.default_rng(11)
    per_task = {f"t{m}": rng.uniform(0, 1, size=n) for m, n in enumerate([3, 4, 5, 8, 8])}
    doubled = dict(per_task, t1=np.tile(per_task["t1"], 2))
    base, heavy = Scores.from_tasks(per_task), Scores.from_tasks(doubled)
    for name in stats.AGGREGATES:
        assert stats.aggregate(heavy, name, reps=5)[0][0] == pytest.approx(
            stats.aggregate(base, name, reps=5)[0][0], abs=1e-12
        ), name
    taus = np.linspace(0, 1, 11)
    np.testing.assert_allclose(
        stats.profile_table({"a": heavy}, taus, reps=5)["estimate"],
        stats.profile_table({"a": base}, taus, reps=5)["estimate"],
        atol=1e-12,
    )
    gap, gap_low, gap_high = stats.aggregate(heavy, "optimality_gap", reps=2000, seed=3)
    mean, mean_low, mean_high = stats.aggregate(heavy, "mean", reps=2000, seed=3)
    assert gap[0] == pytest.approx(1 - mean[0], abs=1e-12)
    # same seed, same resamples: the whole bootstrap distribution mirrors, so the CIs do too
    assert (gap_low[0], gap_high[0]) == pytest.approx((1 - mean_high[0], 1 - mean_low[0]), abs=1e-12)


def test_optimality_gap_is_one_minus_mean_on_published_ragged_scores():
    """DrQ-v2's released DMC scores have 8-10 runs per task and no score above 1 (return / 1000)."""
    from analysis_data import PUBLISHED

    from analysis.normalise import add_scores
    from analysis.published import load_published
    from analysis.scores import final_scores

    path = PUBLISHED / "danijar-dmc_vision-drqv2.json.gz"
    if not path.exists():
        pytest.skip(f"{path} is absent (shared data exists for developers and CI only)")
    (sample,) = final_scores(add_scores(load_published(path))).values()
    assert len(set(sample.runs_per_task)) > 1 and sample.values.max() <= 1
    gap = stats.aggregate(sample, "optimality_gap", reps=10)[0][0]
    mean = stats.aggregate(sample, "mean", reps=10)[0][0]
    pooled_gap = 1 - np.minimum(sample.values[:, -1], 1).mean()  # weighing tasks by their run counts
    assert gap == pytest.approx(1 - mean, abs=1e-12)
    assert abs(pooled_gap - gap) > 1e-3  # the data are ragged enough for pooling to show


def test_improvement_resamples_equal_mann_whitney_on_expanded_resamples():
    rng = np.random.default_rng(3)
    x = Scores.from_tasks({"a": rng.integers(0, 4, 4).astype(float), "b": rng.normal(size=6)})
    y = Scores.from_tasks({"a": rng.integers(0, 4, 3).astype(float), "b": rng.normal(size=5)})
    cx = resample_counts(x.runs_per_task, 30, rng)
    cy = resample_counts(y.runs_per_task, 30, rng)
    vectorised = stats._improvement(x, y)(x.values, y.values, cx, cy)[:, 0]
    for b in range(30):
        per_task = []
        for m in range(2):
            xs = np.repeat(x.values[x.task_of_run == m, 0], cx[b, x.task_of_run == m].astype(int))
            ys = np.repeat(y.values[y.task_of_run == m, 0], cy[b, y.task_of_run == m].astype(int))
            u = scipy.stats.mannwhitneyu(xs, ys, alternative="greater").statistic
            per_task.append(u / (len(xs) * len(ys)))
        assert vectorised[b] == pytest.approx(np.mean(per_task), abs=1e-12)


def test_interval_contains_estimate_and_narrows_with_more_runs():
    few = Scores.from_rliable(_data((3, 10), seed=8))
    many = Scores.from_rliable(_data((30, 10), seed=8))
    est, low, high = stats.aggregate(few, "iqm", reps=2000)
    assert low[0] <= est[0] <= high[0]
    _, low_many, high_many = stats.aggregate(many, "iqm", reps=2000)
    assert high_many[0] - low_many[0] < high[0] - low[0]


def test_bad_arguments_raise_value_error():
    with pytest.raises(ValueError, match="unknown aggregate"):
        stats.aggregate(_ragged(), "average", reps=5)
    with pytest.raises(ValueError, match="reps"):
        interval_estimate(lambda v, c: c @ v, [_ragged()], reps=0)
    with pytest.raises(ValueError, match="NaN"):
        Scores.from_tasks({"a": np.array([1.0, np.nan])})
