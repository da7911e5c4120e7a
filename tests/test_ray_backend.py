"""The Ray backend: every request kind through replicas, bit for bit as local; no model in the driver;
perturbation on the replicas; a replica that dies is replaced and its batch retried, and the run says so.

Ray runs locally on 127.0.0.1 (the session's ``ray_cluster``, two CPU slots). Engine-level
tests use a stub adapter that replicas load through the dispatcher's ``loader``; the stub
and its loader are pickled by value, since the replicas cannot import this test module.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pytest
from PIL import Image

from vlmgate.dispatch import DispatchCounts
from vlmgate.engine import Engine
from vlmgate.errors import ConfigError, ModelError
from vlmgate.models.base import ModelOptions
from vlmgate.records import CLEAN_FAMILY, Sample, Variant
from vlmgate.remote_model import RemoteModel, ReplicaReport
from vlmgate.report.record import load_record
from vlmgate.settings import Settings, build_settings

from support import CROSS_MODAL_TEST, ListBenchmark

pytestmark = pytest.mark.integration  # a local Ray cluster: run by `pytest tests --integration` (CI)


@dataclass
class StubAdapter:
    """Option i scores ``-|mean/64 - i|`` plus 1e-9 x the batch size (a stand-in for rounding).

    With ``marker``, the replica that first reaches its ``die_at``-th batch creates the
    marker and ends its own process there, as a replica killed mid-batch would: only once
    per run, so the replica started in its place computes the batch again.
    """

    spec: str
    fingerprint: str = "stub-fingerprint"
    marker: str | None = None
    die_at: int = 0
    batches: list[int] = field(default_factory=list)

    def score(self, requests: Sequence) -> list[np.ndarray]:
        self.batches.append(len(requests))
        if self.marker and len(self.batches) == self.die_at:
            try:
                os.close(os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:
                pass
            else:
                os._exit(3)
        out = []
        for request in requests:
            level = float(np.asarray(request.image.convert("L")).mean()) / 64.0
            out.append(np.array([-abs(level - i) + 1e-9 * len(requests) for i in range(len(request.continuations))]))
        return out


def load_stub(spec: str, options: ModelOptions, *, apply_log: str | None = None, **kwargs) -> StubAdapter:
    """The replica's loader: a ``StubAdapter``; with ``apply_log``, every rotation applied in this
    process appends the process id to that file."""
    if apply_log is not None:
        from vlmgate.perturbations.rotation import Rotation

        original = Rotation.apply

        def logged(self, image, variant, rng):
            with open(apply_log, "a") as log:
                log.write(f"{os.getpid()}\n")
            return original(self, image, variant, rng)

        Rotation.apply = logged
    return StubAdapter(spec, **kwargs)


@pytest.fixture(scope="module", autouse=True)
def _stubs_travel_by_value():
    """Replicas cannot import this module: its stub and loader travel pickled by value."""
    import ray.cloudpickle

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield
    ray.cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


def generated(n: int) -> ListBenchmark:
    """``n`` samples of three image sizes and varied brightness."""
    return ListBenchmark(tuple(
        Sample(f"s{i:03d}", Image.new("RGB", (64 + 8 * (i % 3), 64), (9 * i % 256, 40, 90)), "Which level?",
               ("a", "b", "c", "d"), i % 4) for i in range(n)))


def stub_dispatcher(**loader_options):
    from vlmgate.ray_backend import RayDispatcher

    return RayDispatcher("stub:ray", ModelOptions(), loader=functools.partial(load_stub, **loader_options))


def observed(engine: Engine) -> dict:
    return {"clean": engine.clean(), **{name: engine.family(name).perturbed for name in ("rotation", "padcrop")}}


def test_a_local_instance_listens_on_the_loopback_only(ray_cluster):
    import ray

    assert ray_cluster["RAY_ADDRESS"].startswith("127.0.0.1:")
    assert {node["NodeManagerAddress"] for node in ray.nodes()} == {"127.0.0.1"}


def test_perturbation_runs_on_the_replicas_not_in_the_driver(ray_cluster, tmp_path, monkeypatch):
    from vlmgate.perturbations.rotation import Rotation

    benchmark = generated(9)
    reference = observed(Engine(StubAdapter("stub:ray"), benchmark, batch_size=4))
    in_driver: list[int] = []
    original = Rotation.apply
    monkeypatch.setattr(Rotation, "apply", lambda self, *args: in_driver.append(1) or original(self, *args))
    log = tmp_path / "applied.txt"
    dispatcher = stub_dispatcher(apply_log=str(log))
    try:
        remote = Engine(dispatcher.model, benchmark, batch_size=4, dispatcher=dispatcher)
        assert observed(remote) == reference
        rotated = sum(len(v) for v in remote.family("rotation").perturbed.values())
        pids = log.read_text().split()
        assert in_driver == [] and len(pids) == rotated > 0
        assert str(os.getpid()) not in pids and len(set(pids)) == 2  # both replicas perturbed
        assert remote.dispatch_counts() == DispatchCounts("ray", replicas=2, batches=dispatcher.counts().batches)
    finally:
        dispatcher.close()


def test_a_replica_that_dies_is_replaced_and_its_batch_retried(ray_cluster, tmp_path):
    benchmark = generated(21)
    reference = observed(Engine(StubAdapter("stub:ray"), benchmark, batch_size=4))
    marker = tmp_path / "died"
    dispatcher = stub_dispatcher(marker=str(marker), die_at=3)
    try:
        remote = Engine(dispatcher.model, benchmark, batch_size=4, dispatcher=dispatcher)
        assert observed(remote) == reference  # the retried batch was computed whole, as before
        counts = remote.dispatch_counts()
        assert marker.exists()
        assert counts.restarted_replicas == 1 and 1 <= counts.retried_batches <= 2  # its batches in flight
        assert counts.replicas == 2 and len(dispatcher.actors) == 2
    finally:
        dispatcher.close()


def test_a_batch_that_kills_every_replica_is_an_error_after_bounded_retries(ray_cluster, tmp_path):
    from vlmgate.ray_backend import MAX_RETRIES

    dispatcher = stub_dispatcher(marker=str(tmp_path / "never"), die_at=1)
    try:
        engine = Engine(dispatcher.model, generated(1), dispatcher=dispatcher)
        # Every fresh replica dies on its first batch: the marker is removed before each retry.
        original = dispatcher.revive

        def revive(slot, dead):
            (tmp_path / "never").unlink(missing_ok=True)
            return original(slot, dead)

        dispatcher.revive = revive
        with pytest.raises(ModelError, match=rf"model stub:ray: the replica computing a batch of 1 score requests "
                                             rf"\(samples s000\) died {MAX_RETRIES + 1} times"):
            engine.clean()
        assert dispatcher.counts().retried_batches == MAX_RETRIES
    finally:
        dispatcher.close()


def test_a_replica_that_cannot_load_the_model_reports_why(ray_cluster, tmp_path):
    from vlmgate.ray_backend import RayDispatcher

    with pytest.raises(ModelError, match="does not exist"):
        RayDispatcher(f"hf:{tmp_path / 'missing'}", ModelOptions(), replicas=1)


def test_replicas_that_disagree_on_the_fingerprint_are_an_error():
    reports = [ReplicaReport("hf:x", "a" * 64, frozenset({"scores"}), node="10.0.0.1"),
               ReplicaReport("hf:x", "b" * 64, frozenset({"scores"}), node="10.0.0.2")]
    with pytest.raises(ModelError, match=r"model hf:x: its replicas loaded different models \(replica 0 on 10.0.0.1"):
        RemoteModel.from_reports("hf:x", reports)
    model = RemoteModel.from_reports("hf:x", [reports[0], reports[0]])
    assert model.fingerprint == "a" * 64 and model.deterministic


def test_a_served_model_behind_ray_replicas_stays_non_deterministic():
    """The flip-rate suite measures the repeat noise of a model that is not deterministic
    (``suites.flip_rate``); behind Ray replicas the engine sees a ``RemoteModel``, which must say so too."""
    class Served:
        spec, fingerprint, deterministic = "openai:http://h/v1?model=m", "c" * 64, False

        def score(self, requests):
            return []

    report = ReplicaReport.of(Served())
    assert report.deterministic is False
    assert RemoteModel.from_reports(Served.spec, [report]).deterministic is False


def test_ray_placement_options_are_validated(tmp_path):
    def settings(**cli) -> Settings:
        return build_settings(tmp_path, cli)

    assert settings(backend="ray").ray_gpus_per_replica == 0.0 and settings(backend="ray").ray_replicas is None
    assert settings(backend="ray", device="cuda:1").ray_gpus_per_replica == 1.0
    assert settings(backend="ray", device="cuda", ray_gpus_per_replica=0.5, ray_replicas=4).ray_replicas == 4
    for cli, message in (
            ({"ray_replicas": 2}, "--vlmgate-ray-replicas applies to --vlmgate-backend ray only"),
            ({"backend": "ray", "ray_replicas": 0}, "--vlmgate-ray-replicas must be an integer >= 1"),
            ({"backend": "ray", "ray_gpus_per_replica": 0.5}, "needs a CUDA model device"),
            ({"backend": "ray", "device": "cuda", "ray_gpus_per_replica": 0.0}, "must be a positive number"),
            ({"backend": "ray", "device": "cuda", "ray_gpus_per_replica": 1.5}, "a whole number of GPUs")):
        with pytest.raises(ConfigError, match=message):
            settings(**cli)


def test_every_request_kind_through_ray_equals_local_and_the_driver_loads_no_model(
        tiny_llava_checkpoint, manifest, ray_cluster, monkeypatch):
    """Scores, probes and generated text from two replicas equal the local backend's bit for bit,
    through the session as the plugin builds it, and the driver never constructs the adapter."""
    from vlmgate.cases import CaseKey
    from vlmgate.models.hf import HFAdapter
    from vlmgate.session import GateSession

    spec, benchmark = f"hf:{tiny_llava_checkpoint}", f"jsonl:{manifest}"
    options = dict(models=(spec,), benchmarks=(benchmark,), batch_size=4, torch_threads=1)  # replicas run 1 thread
    answers = Variant.of(CLEAN_FAMILY, max_new_tokens=5)

    def everything(session: GateSession) -> dict:
        engine = session.engine(spec, benchmark)
        samples = list(engine.samples())
        probes = engine.family_probes("rotation")
        rotated = [(s, obs.variant) for s in samples for obs in probes.observations.perturbed[s.id]][:6]
        return {"scores": observed(engine), "fingerprint": session.fingerprints(CaseKey(spec, benchmark, "x", "y")),
                "probes": [(r.scores.tolist(), {k: v.tolist() for k, v in r.embeddings.items()}, r.answer_tokens,
                            r.vision_tokens.tolist(), r.vision_grid)
                           for s in samples for r in (probes.clean[s.id], *probes.perturbed[s.id])],
                "text": engine.generate([(s, answers) for s in samples] + [
                    (s, Variant(v.family, v.params + (("max_new_tokens", 5),), v.intensity)) for s, v in rotated])}

    import torch

    threads = torch.get_num_threads()  # the local session sets one torch thread in this process
    local = GateSession(Settings(**options), None)
    try:
        expected = everything(local)
    finally:
        local.close()
        torch.set_num_threads(threads)
    assert any(text for text in expected["text"])  # the tiny model does reply
    monkeypatch.setattr(HFAdapter, "__init__", lambda *a, **k: pytest.fail("the driver loaded the model"))
    remote = GateSession(Settings(**options, backend="ray"), None)
    try:
        assert isinstance(remote.model(spec), RemoteModel)
        # the replicas' own capabilities (a LLaVA checkpoint takes several pictures), none in-process only
        assert remote.model(spec).capabilities == frozenset({"choices", "scores", "probes", "generate",
                                                             "several_images"})
        assert everything(remote) == expected
        counts = remote.dispatch_counts(spec)
        assert counts.backend == "ray" and counts.replicas == 2 and counts.batches > 0
        assert counts.retried_batches == counts.restarted_replicas == 0
    finally:
        remote.close()


KILL_AFTER_FIRST_CASE = '''
import os

import pytest


def pytest_runtest_teardown(item):
    """Kill one replica after the first case: the next batches it was to compute are retried."""
    if os.environ.get("KILL_A_REPLICA") and not item.config.stash.get(KILLED, False):
        import ray

        from vlmgate import stash

        session = item.config.stash[stash.SESSION]
        ray.kill(session.dispatcher(session.settings.models[0]).actors[0], no_restart=True)
        item.config.stash[KILLED] = True


KILLED = pytest.StashKey()
'''


def test_the_crossmodal_suite_writes_the_same_record_local_ray_and_two_workers(
        pytester, tiny_llava_checkpoint, ray_cluster, monkeypatch):
    """Scores and generation of every render style: local, Ray with a replica killed mid-run, and
    Ray under ``-n 2`` write the same record; the Ray runs count their batches and the retry."""
    pytester.makepyfile(test_cross_modal=CROSS_MODAL_TEST)
    pytester.makeconftest(KILL_AFTER_FIRST_CASE)
    pytester.makefile(".toml", limits='inherit = false\nmode = "interval"\n')  # metrics recorded, none judged
    args = ["-p", "no:cacheprovider", "--strict-markers", f"--vlmgate-model=hf:{tiny_llava_checkpoint}",
            "--vlmgate-benchmark=soebench:n=6", "--vlmgate-limit=6", "--vlmgate-thresholds=limits.toml",
            "-m", "crossmodal", "--vlmgate-no-cache", "--vlmgate-torch-threads=1"]
    for name, value in ray_cluster.items():  # the runs join this session's instance
        monkeypatch.setenv(name, value)
    local = pytester.runpytest_subprocess(*args, "-p", "no:xdist", "--vlmgate-report=local")
    assert local.ret == 0, local.stdout.str()
    monkeypatch.setenv("KILL_A_REPLICA", "1")
    killed = pytester.runpytest_subprocess(*args, "-p", "no:xdist", "--vlmgate-backend=ray", "--vlmgate-report=ray")
    assert killed.ret == 0, killed.stdout.str()
    monkeypatch.delenv("KILL_A_REPLICA")
    two = pytester.runpytest_subprocess(*args, "-n", "2", "--vlmgate-backend=ray", "--vlmgate-ray-replicas=1",
                                        "--vlmgate-report=two")
    assert two.ret == 0, two.stdout.str()

    records = {name: load_record(pytester.path / name) for name in ("local", "ray", "two")}
    text = {name: json.dumps(record.comparable(), sort_keys=True) for name, record in records.items()}
    assert len(records["local"].cases) == 10 and text["ray"] == text["local"] and text["two"] == text["local"]
    model = f"hf:{tiny_llava_checkpoint}"
    dispatch = {name: record.environment.dispatch[model] for name, record in records.items()}
    assert dispatch["local"].backend == "local" and dispatch["local"].retried_batches == 0
    assert dispatch["ray"].backend == "ray" and dispatch["ray"].replicas == 2
    assert dispatch["ray"].restarted_replicas == 1 and dispatch["ray"].retried_batches >= 1
    assert dispatch["two"] == DispatchCounts("ray", replicas=2, batches=dispatch["two"].batches)  # 1 per worker
    assert dispatch["ray"].batches == dispatch["local"].batches  # the same canonical batches; retries apart
    saved = json.loads((pytester.path / "ray" / "run.json").read_text())
    assert saved["environment"]["dispatch"][model]["restarted_replicas"] == 1
