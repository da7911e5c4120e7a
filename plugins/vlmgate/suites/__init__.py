"""Gating suites: the fourth catalogue, entry-point group ``vlmgate.suites``.

A suite turns a case (model × benchmark × family) into metric results and declares
everything else about itself (``vlmgate.suites.base.Suite``): its metrics, the families it
takes by tag, its pseudo-families and markers, what it needs of an adapter. The plugin,
the threshold loader, ``vlmgate list`` and the reports read those declarations from here.
Built-in suites register under the same group a third-party distribution would use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vlmgate import registry
from vlmgate.errors import ConfigError

if TYPE_CHECKING:
    from vlmgate.records import MetricSpec
    from vlmgate.suites.base import Suite


def suite_names() -> list[str]:
    """Names of every registered suite, from entry points, without importing them."""
    return registry.names(registry.SUITES)


def get_suite(name: str) -> "Suite":
    """An instance of the registered suite ``name``."""
    from vlmgate.suites.base import Suite

    try:
        cls = registry.load(registry.SUITES, name)
    except registry.RegistryError as exc:
        raise ConfigError(f"suite: {exc}") from None
    suite = cls() if isinstance(cls, type) else cls
    if not isinstance(suite, Suite) or suite.name != name:
        raise registry.RegistryError(
            f"entry point {name!r} in group {registry.SUITES!r} loads {cls!r}, which is not a "
            f"vlmgate.suites.base.Suite named {name!r}; make the entry-point name and the suite's `name` agree"
        )
    return suite


def all_suites() -> list["Suite"]:
    """Every registered suite, in name order."""
    return [get_suite(name) for name in suite_names()]


def declared_metrics(suites: "list[Suite] | None" = None) -> dict[str, "MetricSpec"]:
    """Metric name -> its declaration, over every suite; one name, one declaration."""
    found: dict[str, MetricSpec] = {}
    owner: dict[str, str] = {}
    for suite in suites if suites is not None else all_suites():
        for spec in suite.metrics:
            if spec.name in found and found[spec.name] != spec:
                raise registry.RegistryError(
                    f"metric {spec.name!r} is declared differently by suites {owner[spec.name]!r} and "
                    f"{suite.name!r}; a metric name means one thing: rename one of them"
                )
            found.setdefault(spec.name, spec)
            owner.setdefault(spec.name, suite.name)
    return found
