"""llama.cpp's server as the peer in `benchmarks/generation.py`: same GGUF, same workload, reached
through selflab's own `openai:` backend.

Two servers can be measured:
- `xllamacpp` (PyPI wheel, the `bench` extra): llama.cpp's server compiled into a Python extension.
  Started in a child process (so its threads and logs stay out of the benchmark process) on
  127.0.0.1 with continuous batching and `n_parallel` slots;
- a `llama-server` binary on PATH (for example one built from source with native CPU flags).

The GGUF holds Q4_1 weights (Q8_0 token embedding, F32 norms); llama.cpp multiplies them with its
quantised kernels, while our engine runs the same values dequantised to float. `gguf_summary` says so
in numbers for the report.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx

XLLAMACPP_CHILD = """
import sys, time, xllamacpp as x
path, port, n_parallel, threads, n_ctx = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
p = x.CommonParams()
p.model.path = path
p.n_parallel = n_parallel
p.n_ctx = n_ctx
p.cont_batching = True
p.port = port
p.cpuparams.n_threads = threads
p.cpuparams_batch.n_threads = threads
server = x.Server(p)
print("listening", server.listening_address, flush=True)
sys.stdin.read()  # serve until the parent closes our stdin
"""


def xllamacpp_available() -> bool:
    return importlib.util.find_spec("xllamacpp") is not None


def xllamacpp_system_info() -> str:
    """The CPU features the installed wheel was compiled for (the prebuilt wheel targets AVX2)."""
    import xllamacpp

    return f"xllamacpp {xllamacpp.__version__}: {xllamacpp.get_system_info().strip()}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(base: str, proc: subprocess.Popen, log: Path, timeout: float = 300.0) -> None:
    """Poll /health until the server answers 200 (the model is loaded), or fail with its log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"llama.cpp server exited ({proc.returncode}): {log.read_text()[-2000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{base}/health", timeout=2.0).status_code == 200:
                return
        time.sleep(0.5)
    raise RuntimeError(f"llama.cpp server not ready after {timeout:.0f} s: {log.read_text()[-2000:]}")


@contextlib.contextmanager
def serve(kind: str, gguf: Path, n_parallel: int, threads: int, ctx_per_slot: int = 512) -> Iterator[str]:
    """Start llama.cpp's server (`kind` = "xllamacpp" or a llama-server path); yield its /v1 URL."""
    port = free_port()
    n_ctx = n_parallel * ctx_per_slot
    log = Path(tempfile.mkstemp(prefix="selflab-llamacpp-", suffix=".log")[1])
    if kind == "xllamacpp":
        cmd = [
            sys.executable,
            "-c",
            XLLAMACPP_CHILD,
            str(gguf),
            str(port),
            str(n_parallel),
            str(threads),
            str(n_ctx),
        ]
    else:
        cmd = [
            kind,
            *("-m", str(gguf), "--host", "127.0.0.1", "--port", str(port)),
            *("-np", str(n_parallel), "-c", str(n_ctx), "-t", str(threads), "-tb", str(threads)),
            "--cont-batching",
        ]
    # Passive OpenMP waits: on a shared CPU, llama.cpp's spinning worker threads fight other jobs for
    # the cores and decode ~9x slower (measured: 32 tokens in 16.8 s spinning, 1.85 s passive).
    env = {**os.environ, "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}
    with log.open("w") as sink:
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=sink, stderr=subprocess.STDOUT, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, proc, log)
        yield f"{base}/v1"
    finally:
        if proc.stdin:
            proc.stdin.close()
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.unlink(missing_ok=True)


def peers(native: str | None) -> list[str]:
    """Servers to measure: xllamacpp when installed, plus a llama-server binary when one is found."""
    found = [] if not xllamacpp_available() else ["xllamacpp"]
    binary = native or shutil.which("llama-server")
    if binary and os.access(binary, os.X_OK):
        found.append(binary)
    return found


def gguf_summary(path: Path) -> str:
    """Tensor types and bytes of the GGUF, against the float copy our engine runs."""
    try:
        import gguf
    except ImportError:
        return f"{path.name}: {path.stat().st_size / 1e6:.0f} MB (install `gguf` for tensor types)"
    reader = gguf.GGUFReader(str(path))
    types = Counter(t.tensor_type.name for t in reader.tensors)
    n_bytes = sum(int(t.n_bytes) for t in reader.tensors)
    n_elements = sum(int(t.n_elements) for t in reader.tensors)
    kinds = ", ".join(f"{n} {k}" for k, n in types.most_common())
    return (
        f"{path.name}: tensors {kinds}; {n_bytes / 1e6:.0f} MB = {8 * n_bytes / n_elements:.2f} bits/weight "
        f"(fp32 copy: {4 * n_elements / 1e6:.0f} MB, bf16: {2 * n_elements / 1e6:.0f} MB)"
    )


def agreement(a: dict[int, str], b: dict[int, str]) -> tuple[int, int, float]:
    """(identical texts, compared, mean shared-prefix fraction in characters) over common keys."""
    keys = sorted(set(a) & set(b))
    same = sum(a[k] == b[k] for k in keys)
    fractions = []
    for k in keys:
        x, y = a[k], b[k]
        n = next((i for i, (p, q) in enumerate(zip(x, y, strict=False)) if p != q), min(len(x), len(y)))
        fractions.append(n / max(1, len(x), len(y)))
    return same, len(keys), sum(fractions) / max(1, len(fractions))
