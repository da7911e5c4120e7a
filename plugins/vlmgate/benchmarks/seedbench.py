"""``seedbench:PATH`` — SEED-Bench (image part) as VLMEvalKit's TSV.

Published columns: ``index, image, question, A, B, C, D, answer, category`` (base64
images; ``answer`` a letter). SEED-Bench is published in VLMEvalKit's layout, so this is
``vlmevalkit:`` under SEED-Bench's name (``benchmarks.vlmevalkit`` reads the rows): an
``image`` cell holding an earlier row's ``index`` reuses that row's image, options run
from ``A`` while non-empty (E / F options load as well), an optional ``hint`` column
becomes the prompt's hint, and other columns are kept as metadata.

Fields and their default columns (rename with ``seedbench:PATH?question=q&answer=gt``):
``id`` ← index, ``image``, ``question``, ``answer``, ``category``, ``hint``. Sample ids are
the ``index`` values, so report diffs across releases join on SEED-Bench's own ids.
"""

from __future__ import annotations

from vlmgate.benchmarks.base import DEFAULT_OPTIONS, BenchmarkOptions, items_kind
from vlmgate.benchmarks.tabular import TableBenchmark
from vlmgate.benchmarks.vlmevalkit import load_vlmevalkit_table, parquet_yes_no_items


@items_kind("image", varied_questions=True, yes_no_items=parquet_yes_no_items)
def load_seedbench_benchmark(rest: str, *, spec: str, options: BenchmarkOptions = DEFAULT_OPTIONS) -> TableBenchmark:
    return load_vlmevalkit_table(rest, spec=spec, options=options)
