"""Results analysis: pure pandas/numpy/rliable/seaborn, never torch. ``analysis.load(results_dir)`` gives the
tidy frame of every run; see load.py, published.py (catalogue.py: published baselines by name), normalise.py,
stats.py, plots.py and report.py."""

from analysis.load import load, load_train
from analysis.published import load_published

__all__ = ["load", "load_train", "load_published"]
