"""Repository-level pytest configuration: Hypothesis settings profiles, nothing heavy.

``dev`` (default) for local runs; ``ci`` derandomized with no deadline so a CI run is
reproducible and never flaky on a slow machine; ``nightly`` searches much more.
Choose with ``--hypothesis-profile=ci`` or ``HYPOTHESIS_PROFILE=ci``.
"""

import os

from hypothesis import HealthCheck, settings

settings.register_profile("dev", max_examples=50, deadline=None)
settings.register_profile("ci", max_examples=50, deadline=None, derandomize=True, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("nightly", max_examples=1000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))
