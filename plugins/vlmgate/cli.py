"""The ``vlmgate`` command: ``list`` what is registered, ``accuracy`` of a model per question type,
``diff`` two run records, render a run record as an HTML ``report``, ``thresholds`` each case's composed
limit (``--explain``: where each key came from), ``select`` a compact CI subset,
``render`` a text item's cross-modal forms as PNG files, ``merge`` the records of a run split
with ``--vlmgate-shard`` into the run's record, JUnit file, HTML report and decision.

Every subcommand is added to the one parser ``build_parser`` makes. Exit codes: 0 done,
1 ``diff --fail-on regression`` found a significant regression, 2 bad input. Bad input is
every input that would make the answer wrong or empty: an unreadable or foreign record, an
output path that cannot be written, a record marked incomplete (unless the user accepts it
with ``--allow-incomplete``), one shard's record where a whole run's is needed, shards
that are not the whole of one run (``merge``), or, under ``--fail-on regression``, two
records that share no case (a gate that compared nothing must not pass). Each is one line
on stderr naming the file and the fix. ``merge`` exits 0 once it has written the merged
run whatever its decision, as ``report`` does: the decision is the shards' to exit with
(each job exits with its own), and the merged record's to state.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from typing import Sequence

from vlmgate.errors import VlmgateError


def cmd_list(args: argparse.Namespace) -> int:
    """The four catalogues: families (with the suites that take them), adapters, benchmarks, suites."""
    from vlmgate import registry
    from vlmgate.perturbations.base import all_families
    from vlmgate.suites import all_suites

    families, suites = all_families(), all_suites()
    taken_by = {family.name: [s.name for s in suites if family.name in s.perturbation_families()]
                for family in families}
    print("perturbation families:")
    for family in families:
        extra = f" [{', '.join(family.tags)}]" if family.tags else ""
        print(f"  {family.name:<20} suites={','.join(taken_by[family.name]) or '-'} levels=0..{family.max_level}"
              f"{extra}  {family.description}")
    if args.severities:
        print_severity_tables([family.name for family in families])
    print("model schemes:     " + ", ".join(f"{n}:" for n in registry.names(registry.MODELS)))
    print("benchmark schemes: " + ", ".join(f"{n}:" for n in registry.names(registry.BENCHMARKS)))
    print("suites:")
    for suite in suites:
        print(f"  {suite.name:<20} {suite.description}")
        print(f"  {'':<20} metrics: {', '.join(spec.name for spec in suite.metrics)}")
    return 0


def print_severity_tables(names: list[str]) -> None:
    """Each corruption's parameters at severities 1-5 (its table's rows; levels in between interpolate)."""
    from vlmgate.perturbations.base import get_family
    from vlmgate.perturbations.corruption.family import LEVELS_PER_SEVERITY, CorruptionFamily
    from vlmgate.perturbations.corruption.table import MAX_SEVERITY

    print("corruption severity tables (level = 10 x severity):")
    for name in names:
        family = get_family(name)
        if not isinstance(family, CorruptionFamily):
            continue
        print(f"  {name}")
        for severity in range(1, MAX_SEVERITY + 1):
            row = family.parameters(family.at_level(severity * LEVELS_PER_SEVERITY))
            values = ", ".join(f"{key}={value:g}" if isinstance(value, float) else f"{key}={value}"
                               for key, value in row._asdict().items())
            print(f"    severity {severity}: {values}")


def cmd_accuracy(args: argparse.Namespace) -> int:
    """Clean accuracy per value of a meta field (default ``type``), with Wilson intervals."""
    from vlmgate.benchmarks.base import load_benchmark
    from vlmgate.engine import Engine
    from vlmgate.metrics.flips import accuracy
    from vlmgate.models.base import load_model

    settings = scoring_settings(args, models=args.model)
    for benchmark_spec in settings.benchmarks:
        benchmark = load_benchmark(benchmark_spec, settings.benchmark_options())
        for spec in settings.models:
            model = load_model(spec, settings.model_options())
            engine = Engine(model, benchmark, seed=settings.seed, limit=settings.limit,
                            batch_size=settings.batch_size)
            clean = engine.clean()
            groups: dict[str, list] = defaultdict(list)
            for sample in engine.samples():
                group = str(sample.meta_dict.get(args.by, "all"))
                groups[group].append((clean[sample.id].prediction, sample.answer))
                groups["ALL"].append((clean[sample.id].prediction, sample.answer))
            print(f"{spec} on {benchmark_spec}")
            print(f"  {args.by:<10} {'n':>5} {'accuracy':>9}  95% CI")
            for group in sorted(groups, key=lambda g: (g == "ALL", g)):
                preds, answers = zip(*groups[group])
                result = accuracy(preds, answers)
                print(f"  {group:<10} {result.n:>5} {result.value:>9.3f}  [{result.ci_low:.3f}, {result.ci_high:.3f}]")
    return 0


def cmd_diff(args: argparse.Namespace) -> int:
    """Compare two run records case by case with paired tests."""
    from vlmgate.errors import RecordError
    from vlmgate.report.diff import diff_runs, nothing_paired
    from vlmgate.report.diff_format import FORMATTERS, format_text
    from vlmgate.report.record import load_record, refuse_shard
    from vlmgate.report.snapshot_folder import is_snapshot_folder, load_snapshot_folder

    def load(path: str):
        if is_snapshot_folder(path):
            return load_snapshot_folder(path)
        record = load_record(path)
        refuse_shard(record, path)  # a part of a run: merged first, whatever --allow-incomplete says
        if record.completeness.complete:
            return record
        if not args.allow_incomplete:
            raise RecordError(f"{path}: {record.completeness.describe()}; re-run the suite to the end, or pass "
                              "--allow-incomplete to compare the cases it holds")
        print(f"vlmgate: note: {path}: {record.completeness.describe()}; its missing cases show as added or "
              "removed", file=sys.stderr)
        return record

    before, after = load(args.before), load(args.after)
    diff = diff_runs(before, after, before_source=args.before, after_source=args.after)
    if args.fail_on != "never" and not diff.compared:
        raise RecordError(f"{args.before} and {args.after} share no case, so nothing was compared: "
                          f"{nothing_paired(before, after, diff.pairing)}; diff the records of the same suite "
                          "on the same benchmarks")
    sys.stdout.write(format_text(diff, all_rows=args.all) if args.format == "text" else FORMATTERS[args.format](diff))
    if args.fail_on == "never":
        return 0
    return 1 if diff.regressions(all_metrics=args.fail_on == "any-regression") else 0


def cmd_thresholds(args: argparse.Namespace) -> int:
    """Every case's composed limit, per model, and where each of its keys came from.

    Entries compose key by key (``ThresholdSet.lookup``), so what a case is judged against
    can be read nowhere in the file itself; this prints it. Gates that would judge no change
    against a baseline (no ``max_increase`` / ``max_decrease`` after composition) are named.
    """
    from pathlib import Path

    from vlmgate.perturbations.base import all_families
    from vlmgate.settings import build_settings
    from vlmgate.suites import all_suites
    from vlmgate.thresholds import Vocabulary, load_thresholds

    settings = build_settings(Path.cwd(), {"models": args.model, "thresholds": args.file})
    limits = load_thresholds(settings.threshold_layers, Vocabulary.of_catalogues())
    catalogue = all_families()
    print(f"threshold files (lowest first, each overriding only what it names): "
          f"{', '.join(map(str, settings.threshold_layers))}")
    for name, policy in sorted(limits.tiers.items()):
        print(f"tier {name}: a failure -> {policy.on_fail}, inconclusive -> {policy.on_inconclusive}"
              + (f" ({policy.description})" if policy.description else ""))
    for model in settings.models:
        print(f"\nmodel {model}:")
        unchanged = []
        for suite in all_suites():
            for family in suite.families(catalogue):
                for spec in suite.metrics:
                    limit = limits.lookup(model, spec.name, family)
                    where = f"{suite.name} {family} {spec.name}"
                    if limit is None:
                        print(f"  {where}: recorded (no entry)")
                        continue
                    print(f"  {where}: {limit.describe()}, tier {limit.tier}")
                    if args.explain:
                        for line in limit.explain():
                            print(f"      {line}")
                    if limit.gates_value and not limit.gates_change:
                        unchanged.append(where)
        if unchanged:
            print(f"  gates without a change limit ({len(unchanged)}; --vlmgate-baseline judges no change of "
                  f"these): {', '.join(unchanged)}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """Render a run record (and optionally its diff to a baseline) as one HTML file.

    Images are embedded only from the record's own folder (``report.local_files``).
    """
    from pathlib import Path

    from vlmgate.outputs import Output, check
    from vlmgate.report.html import write_html
    from vlmgate.report.local_files import LocalFiles
    from vlmgate.report.record import load_record

    check([Output("-o", Path(args.output), folder=False)])
    record = load_record(args.record)
    baseline = load_record(args.baseline) if args.baseline else None
    folder = Path(args.record) if Path(args.record).is_dir() else Path(args.record).parent
    path = write_html(record, args.output, files=LocalFiles((folder,)), baseline=baseline,
                      source=args.record, baseline_source=args.baseline or "baseline")
    print(f"written: {path}")
    return 0


def cmd_merge(args: argparse.Namespace) -> int:
    """Check the shards' records, write the run's record, JUnit file and HTML report, print its decision."""
    from pathlib import Path

    from vlmgate.outputs import Output, check
    from vlmgate.report.merge import load_shard, merge_shards, write_merged
    from vlmgate.report.verdicts import record_decision

    out = Path(args.out)
    check([Output("--out", out, folder=True)])
    shards = [load_shard(path) for path in args.records]
    record = merge_shards(shards)
    folders = [Path(shard.source) if Path(shard.source).is_dir() else Path(shard.source).parent for shard in shards]
    for path in write_merged(record, out, shard_folders=folders):
        print(f"written: {path}")
    decision = record_decision(record)
    print(f"{decision.headline()} (exit code {decision.exit_code} for the run; merged from "
          f"{len(shards)} shards)")
    for reason in decision.reasons:
        print(f"  {reason}")
    return 0


def cmd_select(args: argparse.Namespace) -> int:
    """Write a compact CI subset of a benchmark (``vlmgate.selection``) as a jsonl manifest."""
    from vlmgate.benchmarks.base import load_benchmark
    from vlmgate.models.base import load_model
    from vlmgate.selection import select_subset, write_manifest

    settings = scoring_settings(args, models=list(dict.fromkeys(args.models)))
    benchmark = load_benchmark(settings.benchmarks[0], settings.benchmark_options())
    models = [load_model(spec, settings.model_options()) for spec in settings.models]
    selection = select_subset(benchmark, models, size=args.size, seed=settings.seed, corruptions=args.corruptions,
                              severities=args.severities, clusters=args.clusters, embedding=args.embedding,
                              limit=settings.limit, batch_size=settings.batch_size)
    path = write_manifest(selection, benchmark, args.out)
    comparisons = len(selection.models) * len(selection.corruptions) * len(selection.severities)
    flipped = sum(item.inconsistency.flips > 0 for item in selection.items)
    print(f"written: {path} ({len(selection.items)} of {selection.available} samples of {selection.benchmark}; "
          f"{selection.clusters} clusters; {comparisons} corrupted comparisons per item; "
          f"{flipped} chosen items changed prediction at least once)")
    print(f"use it with: --vlmgate-benchmark jsonl:{path}")
    return 0


def cmd_render(args: argparse.Namespace) -> int:
    """Save one text item's image and mixed forms in every render style as PNGs."""
    from pathlib import Path

    from vlmgate.benchmarks.base import load_benchmark, require_text_benchmark
    from vlmgate.errors import DataError
    from vlmgate.modalities import item_form
    from vlmgate.render import RENDER_STYLES, get_style

    benchmark = require_text_benchmark(load_benchmark(args.benchmark))
    items = list(benchmark.items())
    item = next((i for i in items if i.id == args.item), None) if args.item else items[0]
    if item is None:
        raise DataError(f"benchmark {args.benchmark} has no item {args.item!r}; its first ids: "
                        f"{', '.join(i.id for i in items[:5])}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    styles = [get_style(name) for name in (args.styles or RENDER_STYLES)]
    for modality in ("text", "image", "mixed"):
        forms = [(style.name, item_form(item, modality, style)) for style in styles[:1 if modality == "text" else None]]
        for style_name, form in forms:
            path = out / (f"{item.id}-text-blank.png" if modality == "text"
                          else f"{item.id}-{modality}-{style_name}.png")
            form.image.save(path, format="PNG")
            print(f"written: {path} ({form.image.width}x{form.image.height}); prompt: {form.prompt!r}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """Send a run record to a tracker (MLflow, W&B), or write its gates as a model card's ``model-index``."""
    from pathlib import Path

    from vlmgate.report.export import RecordFiles

    if args.target == "model-card" and args.out is not None:
        from vlmgate.outputs import Output, check

        check([Output("--out", Path(args.out), folder=False)])
    files = RecordFiles.load(args.record)
    if args.target == "mlflow":
        from vlmgate.report.export_mlflow import export_mlflow

        run = export_mlflow(files, tracking_uri=args.tracking_uri, experiment=args.experiment, name=args.run_name)
        print(f"logged: MLflow run {run.info.run_id} ({run.info.run_name}), artifacts at {run.info.artifact_uri}")
    elif args.target == "wandb":
        from vlmgate.report.export_wandb import export_wandb

        run = export_wandb(files, project=args.project, directory=args.dir, mode=args.mode, name=args.run_name)
        offline = f"; offline: upload it with wandb sync {run.sync_dir}" if run.offline else ""
        print(f"logged: W&B run {run.id} ({run.name}) in project {run.project}{offline}")
    else:
        from vlmgate.report.model_card import write_model_card

        text = write_model_card(files, args.out, model=args.model)
        if args.out is None:
            sys.stdout.write(text)
        else:
            print(f"written: {args.out}")
    return 0


def add_scoring_options(parser: argparse.ArgumentParser) -> None:
    """The options of a command that scores a benchmark with models, from the plugin's own table
    (``vlmgate.options``): the same names without the ``vlmgate-`` prefix, the same checks."""
    from vlmgate.options import SCORING, add_options

    add_options(parser.add_argument, keys=SCORING)


def scoring_settings(args: argparse.Namespace, *, models: Sequence[str]):
    """The run settings of a scoring command, built and validated exactly as the plugin's are
    (``[tool.vlmgate]`` of the current folder under the command line, over the defaults)."""
    from pathlib import Path

    from vlmgate.options import SCORING, values
    from vlmgate.settings import build_settings

    cli = values(args, keys=SCORING)
    cli.update(models=list(models), benchmarks=[args.benchmark] if args.benchmark else None,
               seed=getattr(args, "seed", None))
    return build_settings(Path.cwd(), cli)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vlmgate", description="Robustness gates for vision-language models.")
    sub = parser.add_subparsers(dest="command", required=True)
    listing = sub.add_parser("list", help="registered perturbation families, model and benchmark schemes, suites")
    listing.add_argument("--severities", action="store_true",
                         help="also print every corruption's parameters at severities 1-5")
    listing.set_defaults(func=cmd_list)
    acc = sub.add_parser("accuracy", help="clean accuracy of models per question type")
    acc.add_argument("--model", action="append", required=True, metavar="SPEC", help="model spec (repeatable)")
    acc.add_argument("--benchmark", metavar="SPEC", help="benchmark (default from [tool.vlmgate] benchmarks, "
                                                         "else bundled:shapes)")
    acc.add_argument("--by", default="type", help="meta field to group by (default: type)")
    add_scoring_options(acc)
    acc.set_defaults(func=cmd_accuracy)
    diff = sub.add_parser("diff", help="compare two run records (run.json) with paired tests per case and metric, "
                                     "or two snapshot folders (__vlmgate_snapshots__) by value and verdict")
    diff.add_argument("before", metavar="BEFORE",
                      help="run record of the earlier release (run.json or its folder), or its snapshot folder")
    diff.add_argument("after", metavar="AFTER", help="run record or snapshot folder of the later release")
    diff.add_argument("--format", choices=("text", "json", "markdown"), default="text",
                      help="text (default), markdown (pull requests) or json (tools)")
    diff.add_argument("--fail-on", choices=("never", "regression", "any-regression"), default="never",
                      help="exit 1 on a regression: 'regression' counts gated metrics (those with a limit) newly "
                           "failing or significantly worse; 'any-regression' also metrics without a limit "
                           "(default: never); exit 2 when the two records share no case")
    diff.add_argument("--all", action="store_true", default=False,
                      help="text format: list every metric, not only the failing gates and significant changes")
    diff.add_argument("--allow-incomplete", action="store_true", default=False,
                      help="compare a run record marked incomplete (a run cut short) instead of refusing it")
    diff.set_defaults(func=cmd_diff)
    merge = sub.add_parser("merge", help="join the run records of the jobs of a run split with --vlmgate-shard I/N "
                                         "into one run.json, junit.xml and report.html, and state its decision")
    merge.add_argument("records", nargs="+", metavar="RECORD",
                       help="each shard's run record (run.json or its folder), every I of 1..N once")
    merge.add_argument("--out", required=True, metavar="DIR",
                       help="folder for the merged run.json, junit.xml and report.html")
    merge.set_defaults(func=cmd_merge)
    limits = sub.add_parser("thresholds", help="the limit every case is judged against, composed from the "
                                                "threshold file's entries, per model")
    limits.add_argument("--model", action="append", metavar="SPEC",
                        help="model spec (repeatable; default from [tool.vlmgate] models, else bundled:shapes-v1)")
    limits.add_argument("--file", metavar="TOML", help="threshold file (default: as a pytest run here would use)")
    limits.add_argument("--explain", action="store_true", default=False,
                        help="also say, for every key, which entry of which file set it")
    limits.set_defaults(func=cmd_thresholds)
    report = sub.add_parser("report", help="render a run record as a self-contained HTML report")
    report.add_argument("record", metavar="RUN_JSON", help="run record (run.json or its folder)")
    report.add_argument("-o", "--output", default="report.html", help="HTML file to write (default report.html)")
    report.add_argument("--baseline", metavar="RUN_JSON", help="add the diff to this earlier run record")
    report.set_defaults(func=cmd_report)
    export = sub.add_parser("export", help="send a run record to MLflow or W&B, or write its gates as the "
                                           "model-index of a Hugging Face model card")
    targets = export.add_subparsers(dest="target", required=True)
    to_mlflow = targets.add_parser("mlflow", help="log the record as a new MLflow run: every metric with its "
                                                  "interval, the decision, specs, fingerprints and the record itself "
                                                  "(pip install 'pytest-vlmgate[mlflow]')")
    to_mlflow.add_argument("--tracking-uri", metavar="URI",
                           help="MLflow tracking URI (default: MLFLOW_TRACKING_URI, else MLflow's default)")
    to_mlflow.add_argument("--experiment", metavar="NAME", help="experiment, created if missing (default vlmgate)")
    to_wandb = targets.add_parser("wandb", help="log the record as a new W&B run: the same figures as summary, "
                                                "the record as an artifact (pip install 'pytest-vlmgate[wandb]')")
    to_wandb.add_argument("--project", metavar="NAME", help="W&B project (default vlmgate)")
    to_wandb.add_argument("--dir", metavar="DIR", help="where W&B writes the run's files (default: ./wandb)")
    to_wandb.add_argument("--mode", choices=("online", "offline"),
                          help="offline: write the run for a later wandb sync (default: WANDB_MODE, else online)")
    for tracker in (to_mlflow, to_wandb):
        tracker.add_argument("--run-name", metavar="NAME", help="the run's name (default: MODELS on BENCHMARKS)")
    card = targets.add_parser("model-card", help="the record's gated metrics as the model-index of a Hugging Face "
                                                 "model card (README.md front matter)")
    card.add_argument("--out", metavar="FILE", help="model card to write, or to update when it exists (its other "
                                                    "metadata, results and text kept); default: standard output")
    card.add_argument("--model", metavar="SPEC", help="the model whose card it is (default: the record's only model)")
    for target in (to_mlflow, to_wandb, card):
        target.add_argument("record", metavar="RUN_JSON", help="run record (run.json or its folder)")
    export.set_defaults(func=cmd_export)
    select = sub.add_parser("select", help="a compact CI subset of a benchmark: the items corruption changes "
                                           "predictions on most, spread over clusters of items")
    select.add_argument("--benchmark", metavar="SPEC", help="benchmark to select from (default from "
                                                            "[tool.vlmgate] benchmarks, else bundled:shapes)")
    select.add_argument("--models", nargs="+", action="extend", required=True, metavar="SPEC",
                        help="models whose clean vs corrupted predictions score the items (repeatable)")
    select.add_argument("--size", type=int, required=True, help="number of items to keep")
    select.add_argument("--seed", type=int, default=None, help="seed of the corruptions' noise and of k-means "
                                                              "(default 0)")
    select.add_argument("--corruptions", nargs="+", action="extend", metavar="NAME",
                        help="corruption families to compare under (default: all 19)")
    select.add_argument("--severities", nargs="+", type=int, default=[3], metavar="S",
                        help="corruption severities 1-5 to compare under (default: 3)")
    select.add_argument("--clusters", type=int, default=None,
                        help="k-means clusters (default: min(8, size))")
    select.add_argument("--embedding", choices=("pixels", "probe"), default="pixels",
                        help="item embedding for clustering: pixel/question descriptor (default) or the "
                             "models' ctx_mcq probe")
    select.add_argument("--out", required=True, metavar="PATH", help="manifest to write (JSON lines)")
    add_scoring_options(select)
    select.set_defaults(func=cmd_select)
    render = sub.add_parser("render", help="save a text item's image and mixed forms in every render style "
                                           "(cross-modal suite) as PNG files")
    render.add_argument("--out", required=True, metavar="DIR", help="folder for the PNG files")
    render.add_argument("--benchmark", default="soebench:n=1", metavar="SPEC",
                        help="text benchmark (textqa:PATH or soebench:...; default soebench:n=1)")
    render.add_argument("--item", default=None, metavar="ID", help="item id (default: the first item)")
    render.add_argument("--styles", nargs="+", metavar="STYLE", help="render styles (default: all)")
    render.set_defaults(func=cmd_render)
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
