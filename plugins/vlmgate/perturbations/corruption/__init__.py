"""The 19 ImageNet-C corruptions (Hendrycks & Dietterich 2019, 15 + 4 extra), one per module.

Spec §2 (Bench-C) corrupts every benchmark image with these families at severities 1-5.
Each module holds one family: its published parameter table (written at the 224-px
resolution the tables were tuned on) and the corruption itself. What all of them share
lives in four small modules: ``table`` (severity interpolation), ``pixels`` (float/uint8
conversion and resolution scaling), ``filtering`` (Gaussian smoothing, FFT correlation)
and ``family`` (the ``PerturbationFamily`` plumbing). A family another one builds on is
imported from its own module (snow uses motion blur's line kernel and zoom blur's centre
zoom; frost uses fog's plasma fractal).
"""
