"""Errors vlmgate raises for bad input.

Every message names the offending file (or spec), the key, and the fix, so that a CI log
alone is enough to repair the input. They subclass ``VlmgateError`` so the plugin can turn
them into a one-line ``pytest.UsageError`` instead of a traceback.
"""

from __future__ import annotations

from types import ModuleType


class VlmgateError(Exception):
    """Base class of every input error vlmgate reports."""


class ConfigError(VlmgateError):
    """A command-line option, threshold file or ``[tool.vlmgate]`` table is wrong."""


class DataError(VlmgateError):
    """A benchmark file, manifest row or image cannot be used."""


class ModelError(VlmgateError):
    """A model spec cannot be resolved, loaded or scored."""


class RegistryError(VlmgateError):
    """A name is not registered under its entry-point group."""


class RecordError(VlmgateError):
    """A run record (``run.json``) cannot be read, or two records cannot be compared."""


class NotApplicable(VlmgateError):
    """A case does not apply to its model or benchmark (e.g. an image suite on text-only
    items); the gate skips it with this message instead of failing it."""


def require_package(module: str, extra: str, what: str, error: type[VlmgateError] = VlmgateError,
                    package: str | None = None) -> ModuleType:
    """Import ``module``, an optional dependency, or raise ``error`` saying in one line what needed
    it and which extra installs it (or ``package``, its distribution, where the name differs):
    optional packages are imported only where used, so that ``import vlmgate`` and every pytest
    session stay free of them."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise error(f"{what} needs the {module!r} package, which is not installed; "
                    f"pip install 'pytest-vlmgate[{extra}]' (or pip install {package or module})") from None
