"""Minimal failing instances: Hypothesis searches perturbation parameters per family.

* ``strategies``: public Hypothesis strategies over each family's integer levels and
  choices (composite ones for text overlays), shrinking toward the mildest change;
* ``instance``: ``SearchInstance``, one searched input (sample, level, choices);
* ``minimal``: the search itself, through the engine, bounded by a model-call budget;
* ``failure``: the minimal failing instance found, its message lines and its images;
* ``counterexamples``: the committed store of found failures, replayed first next run.

Only ``counterexamples`` and ``instance`` load without Hypothesis (the plugin reads the
store at start-up, so that a malformed file is a usage error before any test runs).
"""
