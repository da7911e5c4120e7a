"""``vlmgate export``: a kept release record into MLflow, W&B and a model card, read back.

Each exporter runs through the command on a real ``run.json`` (the kept shapes-v1 release)
and its output is read back with the tool's own reader: MLflow's client on a local store,
the records of W&B's offline run file, ``huggingface_hub``'s model-index parser. Every
metric's figures must come back as the record holds them.
"""

from __future__ import annotations

import json
import math
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from vlmgate.cli import main
from vlmgate.decision import GO
from vlmgate.errors import VlmgateError
from vlmgate.report.export import RecordFiles, metric_rows, run_params
from vlmgate.report.record import write_record
from vlmgate.report.verdicts import record_decision

from support import kept_release


@pytest.fixture(scope="module")
def release():
    return kept_release("shapes-v1")


@pytest.fixture
def record_dir(tmp_path, release) -> Path:
    """The release as ``pytest --vlmgate-report DIR`` leaves it: run.json and report.html."""
    folder = tmp_path / "release"
    write_record(release, folder)
    (folder / "report.html").write_text("<!doctype html><title>shapes-v1</title>\n", encoding="utf-8")
    return folder


def same(stored, expected: float) -> bool:
    return math.isnan(expected) if stored is None or math.isnan(stored) else stored == expected


def test_rows_have_unique_keys_and_every_metric(release):
    rows = metric_rows(release)
    assert len(rows) == sum(len(case.metrics) for case in release.cases)
    assert len({row.key for row in rows}) == len(rows)
    # blank is judged by three suites: the suite in the key keeps them apart
    assert "flip_rate/bundled_shapes-v1-bundled_shapes-blank/ifr" in {row.key for row in rows}


def test_mlflow_run_holds_every_figure_the_decision_and_the_files(record_dir, release, tmp_path, monkeypatch,
                                                                   capsys):
    import mlflow
    # mlflow-skinny opens no SQL store; its file store is what a local test can read back
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    uri = (tmp_path / "mlruns").as_uri()
    assert main(["export", "mlflow", str(record_dir / "run.json"), "--tracking-uri", uri,
                 "--experiment", "gates"]) == 0
    assert "logged: MLflow run" in capsys.readouterr().out

    client = mlflow.MlflowClient(tracking_uri=uri)
    (run,) = client.search_runs([client.get_experiment_by_name("gates").experiment_id])
    data = run.data
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "bundled:shapes-v1 on bundled:shapes"
    rows = metric_rows(release)
    gated = [row for row in rows if row.gated]
    assert len(gated) == 78
    for row in rows:
        metric = row.metric
        for suffix, expected in (("value", metric.value), ("ci_low", metric.ci_low), ("ci_high", metric.ci_high),
                                 ("n", metric.n)):
            assert same(data.metrics[f"{row.key}/{suffix}"], expected), (row.key, suffix)
        assert data.tags.get(f"{row.key}/limit") == metric.limit
        assert data.tags.get(f"{row.key}/verdict") == (metric.verdict if row.gated else None)
    assert record_decision(release).verdict == GO
    assert data.tags["vlmgate.decision"] == GO and data.metrics["decision_go"] == 1.0
    assert data.params == run_params(release)
    assert data.params["model/bundled:shapes-v1"] == release.models["bundled:shapes-v1"]
    assert data.params["seed"] == "0" and data.params["vlmgate_version"] == release.vlmgate_version
    assert {a.path for a in client.list_artifacts(run.info.run_id)} == {"run.json", "report.html"}
    copy = client.download_artifacts(run.info.run_id, "run.json", str(tmp_path / "download"))
    assert Path(copy).read_bytes() == (record_dir / "run.json").read_bytes()


def wandb_records(run_file: Path) -> list:
    """The records of an offline W&B run file (``run-ID.wandb``): LevelDB's log format, as
    W&B writes it (a ``:W&B`` header, then 32 KiB blocks of checksummed chunks)."""
    from wandb.proto import wandb_internal_pb2

    data = run_file.read_bytes()
    assert data[:4] == b":W&B"
    block, position, pending, records = 32768, 7, b"", []
    while position + 7 <= len(data):
        if block - position % block < 7:  # a block's tail too short for a chunk header is padding
            position += block - position % block
            continue
        _, length, kind = struct.unpack("<IHB", data[position:position + 7])
        pending += data[position + 7:position + 7 + length]
        position += 7 + length
        if kind in (1, 4):  # a full record, or the last chunk of one
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
            pending = b""
    return records


def test_wandb_offline_run_holds_every_figure_the_decision_and_the_files(record_dir, release, tmp_path,
                                                                          monkeypatch):
    import wandb
    for variable in ("WANDB_DATA_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR"):  # W&B's staging, off $HOME
        monkeypatch.setenv(variable, str(tmp_path / variable.lower()))
    monkeypatch.delenv("WANDB_MODE", raising=False)
    try:
        assert main(["export", "wandb", str(record_dir), "--mode", "offline", "--dir", str(tmp_path / "w"),
                     "--project", "gates"]) == 0
    finally:
        wandb.teardown()
    (run_file,) = (tmp_path / "w" / "wandb").glob("offline-run-*/run-*.wandb")
    records = wandb_records(run_file)
    (run,) = [r.run for r in records if r.WhichOneof("record_type") == "run"]
    assert run.project == "gates" and list(run.tags) == [GO]
    config = {item.key: json.loads(item.value_json) for item in run.config.update}
    assert {key: config[key] for key in run_params(release)} == run_params(release)
    summary = {item.key: json.loads(item.value_json) for r in records if r.WhichOneof("record_type") == "summary"
               for item in r.summary.update}
    assert summary["decision"] == GO and summary["decision_go"] == 1
    for row in metric_rows(release):
        metric = row.metric
        for suffix, expected in (("value", metric.value), ("ci_low", metric.ci_low), ("ci_high", metric.ci_high),
                                 ("n", metric.n)):
            assert same(summary[f"{row.key}/{suffix}"], expected), (row.key, suffix)
        if row.gated:
            assert summary[f"{row.key}/limit"] == metric.limit and summary[f"{row.key}/verdict"] == metric.verdict
    (artifact,) = [r.artifact for r in records if r.WhichOneof("record_type") == "artifact"]
    assert artifact.type == "vlmgate-run-record" and artifact.name == "vlmgate-bundled-shapes-v1"
    assert {entry.path: entry.size for entry in artifact.manifest.contents} == {
        name: (record_dir / name).stat().st_size for name in ("run.json", "report.html")}


def test_model_card_model_index_reads_back_with_the_hub_and_keeps_the_card(record_dir, release, tmp_path):
    from huggingface_hub import ModelCard, metadata_load
    from huggingface_hub.repocard_data import model_index_to_eval_results

    readme = tmp_path / "README.md"
    readme.write_text("---\nlicense: mit\nmodel-index:\n- name: shapes-v1\n  results:\n  - task: {type: "
                      "image-classification}\n    dataset: {name: Shapes, type: shapes}\n    metrics:\n    - {type: "
                      "accuracy, value: 0.9}\n---\n\n# shapes-v1\n\nA toy model.\n", encoding="utf-8")
    for _ in range(2):  # a second export replaces its own results, and only those
        assert main(["export", "model-card", str(record_dir / "run.json"), "--out", str(readme)]) == 0

    metadata = metadata_load(readme)
    name, results = model_index_to_eval_results(metadata["model-index"])
    assert name == "shapes-v1" and metadata["license"] == "mit"
    assert metadata["vlmgate"]["decision"] == GO
    assert metadata["vlmgate"]["model_fingerprint"] == release.models["bundled:shapes-v1"]
    assert ModelCard.load(readme).text == "\n# shapes-v1\n\nA toy model.\n"
    foreign = [r for r in results if not r.metric_type.startswith("vlmgate/")]
    assert [(r.metric_type, r.metric_value) for r in foreign] == [("accuracy", 0.9)]
    ours = [r for r in results if r.metric_type.startswith("vlmgate/")]
    gated = [row for row in metric_rows(release) if row.gated]
    assert len(ours) == len(gated) == 78
    by_identity = {(r.metric_type, r.metric_config, r.dataset_type): r for r in ours}
    assert len(by_identity) == len(ours)
    for row in gated:
        result = by_identity[(f"vlmgate/{row.case.key.suite}/{row.metric.name}", row.case.key.family,
                              row.case.key.benchmark)]
        metric = row.metric
        assert result.task_type == "visual-question-answering"
        assert result.dataset_revision == release.benchmarks[row.case.key.benchmark]
        assert result.metric_value == metric.value
        assert result.metric_args == {"ci_low": metric.ci_low, "ci_high": metric.ci_high, "confidence": 0.95,
                                      "n": metric.n, "limit": metric.limit, "verdict": metric.verdict}
        assert metric.verdict in result.metric_name and f"n={metric.n}" in result.metric_name


def test_model_card_of_a_record_with_several_models_names_the_choice(record_dir, release):
    import dataclasses

    two = dataclasses.replace(release, models={**release.models, "bundled:shapes-v2": None})
    write_record(two, record_dir)
    with pytest.raises(VlmgateError, match=r"judged 2 models .*pass --model SPEC"):
        from vlmgate.report.model_card import model_card

        model_card(RecordFiles.load(record_dir))


def test_a_missing_tracker_library_is_one_line_naming_the_extra(record_dir, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # import mlflow raises ImportError
    assert main(["export", "mlflow", str(record_dir)]) == 2
    assert capsys.readouterr().err.strip() == ("vlmgate: vlmgate export mlflow needs the 'mlflow' package, which is "
                                               "not installed; pip install 'pytest-vlmgate[mlflow]' (or pip install "
                                               "mlflow-skinny)")


def test_importing_the_plugin_and_the_command_imports_no_exporter_library():
    code = ("import sys, vlmgate.plugin, vlmgate.cli; vlmgate.cli.build_parser(); "
            "print(sorted(m for m in ('mlflow', 'wandb', 'huggingface_hub') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
