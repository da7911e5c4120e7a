"""vlmgate: gate vision-language-model releases on robustness, as a pytest plugin.

The package root stays import-light on purpose: pytest imports the plugin for every
session (including ``pytest --help``), so torch and transformers load only when a
model is first scored.
"""

__version__ = "0.1.0"
