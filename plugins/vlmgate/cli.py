"""The ``vlmgate`` command: ``list`` what is registered, ``accuracy`` of a model per question type.

Later subcommands (``diff``, ``report``, ``select``) share the same parser builder.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from typing import Sequence

from vlmgate.errors import VlmgateError


def cmd_list(args: argparse.Namespace) -> int:
    from vlmgate import registry
    from vlmgate.perturbations.base import get_family
    from vlmgate.suites import SUITE_DESCRIPTIONS

    print("perturbation families:")
    for name in registry.names(registry.PERTURBATIONS):
        family = get_family(name)
        extra = f" [{', '.join(family.tags)}]" if family.tags else ""
        print(f"  {name:<20} suites={','.join(family.suites)} levels=0..{family.max_level}{extra}  {family.description}")
    print("model schemes:     " + ", ".join(f"{n}:" for n in registry.names(registry.MODELS)))
    print("benchmark schemes: " + ", ".join(f"{n}:" for n in registry.names(registry.BENCHMARKS)))
    print("suites:")
    for name, description in SUITE_DESCRIPTIONS.items():
        print(f"  {name:<20} {description}")
    return 0


def cmd_accuracy(args: argparse.Namespace) -> int:
    """Clean accuracy per value of a meta field (default ``type``), with Wilson intervals."""
    from vlmgate.benchmarks.base import load_benchmark
    from vlmgate.engine import Engine
    from vlmgate.metrics.flips import accuracy
    from vlmgate.models.base import ModelOptions, load_model

    benchmark = load_benchmark(args.benchmark)
    for spec in args.model:
        model = load_model(spec, ModelOptions(args.device, args.dtype))
        engine = Engine(model, benchmark, seed=0, limit=args.limit, batch_size=args.batch_size)
        clean = engine.clean()
        groups: dict[str, list] = defaultdict(list)
        for sample in engine.samples():
            group = str(sample.meta_dict.get(args.by, "all"))
            groups[group].append((clean[sample.id].prediction, sample.answer))
            groups["ALL"].append((clean[sample.id].prediction, sample.answer))
        print(f"{spec} on {args.benchmark}")
        print(f"  {args.by:<10} {'n':>5} {'accuracy':>9}  95% CI")
        for group in sorted(groups, key=lambda g: (g == "ALL", g)):
            preds, answers = zip(*groups[group])
            result = accuracy(preds, answers)
            print(f"  {group:<10} {result.n:>5} {result.value:>9.3f}  [{result.ci_low:.3f}, {result.ci_high:.3f}]")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vlmgate", description="Robustness gates for vision-language models.")
    sub = parser.add_subparsers(dest="command", required=True)
    listing = sub.add_parser("list", help="registered perturbation families, model and benchmark schemes, suites")
    listing.set_defaults(func=cmd_list)
    acc = sub.add_parser("accuracy", help="clean accuracy of models per question type")
    acc.add_argument("--model", action="append", required=True, metavar="SPEC", help="model spec (repeatable)")
    acc.add_argument("--benchmark", default="bundled:shapes", metavar="SPEC")
    acc.add_argument("--by", default="type", help="meta field to group by (default: type)")
    acc.add_argument("--limit", type=int, default=None)
    acc.add_argument("--batch-size", type=int, default=8)
    acc.add_argument("--device", default="cpu")
    acc.add_argument("--dtype", default="float32")
    acc.set_defaults(func=cmd_accuracy)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except VlmgateError as exc:
        print(f"vlmgate: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
