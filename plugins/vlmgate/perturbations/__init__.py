"""Perturbation families, one per module, registered under ``vlmgate.perturbations``."""

from vlmgate.perturbations.base import PerturbationFamily, VariantContext, family_names, get_family

__all__ = ["PerturbationFamily", "VariantContext", "get_family", "family_names"]
