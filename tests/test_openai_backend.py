"""The openai backend against real HTTP servers on 127.0.0.1: our own `selflab serve` app over the
tiny model, a server that answers 500, a flaky one that recovers, and a port with nothing on it."""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from selflab.errors import BackendError
from selflab.models import GenerationRequest, load_model
from selflab.models.openai_backend import OpenAIModel


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def send_json(handler: BaseHTTPRequestHandler, payload: object) -> None:
    """Answer 200 with `payload` as JSON."""
    body = json.dumps(payload).encode()
    handler.send_response(200)
    handler.send_header("Content-Type", "application/json")
    handler.end_headers()
    handler.wfile.write(body)


class Scripted(BaseHTTPRequestHandler):
    """Answers `fail_first` requests with HTTP 500, then a valid chat completion; records headers."""

    fail_first = 10**9
    calls = 0
    seen_auth: list[str] = []

    def do_POST(self) -> None:  # noqa: N802
        cls = type(self)
        cls.calls += 1
        cls.seen_auth.append(self.headers.get("Authorization", ""))
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if cls.calls <= cls.fail_first:
            self.send_response(500)
            self.end_headers()
            self.wfile.write(b"internal error")
            return
        send_json(
            self,
            {
                "choices": [{"message": {"role": "assistant", "content": "Paris"}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 5, "completion_tokens": 1},
            },
        )

    def log_message(self, *args: object) -> None:
        pass


def start_scripted(fail_first: int) -> tuple[ThreadingHTTPServer, type[Scripted]]:
    handler = type("H", (Scripted,), {"fail_first": fail_first, "calls": 0, "seen_auth": []})
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, handler


def test_server_answering_500_gives_clear_error_after_retries():
    server, handler = start_scripted(fail_first=10**9)
    try:
        port = server.server_address[1]
        m = OpenAIModel("m", f"http://127.0.0.1:{port}/v1", retries=2, backoff=0.01)
        with pytest.raises(BackendError) as exc:
            m.generate([GenerationRequest.chat("hi")])
        assert handler.calls == 3  # one try + two retries
        assert "HTTP 500" in exc.value.problem and exc.value.fix
        # on_error="record": the run goes on, the failure is recorded
        r = OpenAIModel("m", f"http://127.0.0.1:{port}/v1", retries=0, on_error="record")
        out = r.generate([GenerationRequest.chat("hi")])[0]
        assert out.finish_reason == "error" and "500" in (out.error or "")
    finally:
        server.shutdown()


def test_flaky_server_recovers_and_key_comes_from_env(monkeypatch):
    monkeypatch.setenv("SELFLAB_TEST_KEY", "sk-secret-123")
    server, handler = start_scripted(fail_first=2)
    try:
        port = server.server_address[1]
        m = OpenAIModel(
            "m", f"http://127.0.0.1:{port}/v1", key_env="SELFLAB_TEST_KEY", retries=3, backoff=0.01
        )
        out = m.generate([GenerationRequest.chat("capital of France?")])[0]
        assert out.text == "Paris" and handler.calls == 3
        assert handler.seen_auth[-1] == "Bearer sk-secret-123"
        assert "sk-secret" not in repr(vars(m))
    finally:
        server.shutdown()


class Garbled(BaseHTTPRequestHandler):
    """Answers 200 with a body of the right JSON but the wrong shape (cycling through `bodies`)."""

    bodies = [
        {"choices": ["Paris"]},
        {"choices": [{"message": "Paris", "finish_reason": "stop"}]},
        {"choices": [{"message": {"content": "Paris"}}], "usage": 5},
        {"choices": [{"message": {"content": ["Paris"]}}]},
        [1, 2],
    ]
    calls = 0

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        payload = self.bodies[type(self).calls % len(self.bodies)]
        type(self).calls += 1
        send_json(self, payload)

    def log_message(self, *args: object) -> None:
        pass


def test_garbled_responses_are_recorded_errors_never_crashes():
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Garbled)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/v1"
        m = OpenAIModel("m", url, retries=0, concurrency=1, on_error="record")
        outs = m.generate([GenerationRequest.chat("hi") for _ in Garbled.bodies])
        assert all(o.finish_reason == "error" and "unexpected response" in (o.error or "") for o in outs)
        with pytest.raises(BackendError, match="unexpected response"):
            OpenAIModel("m", url, retries=0).generate([GenerationRequest.chat("hi")])
    finally:
        server.shutdown()


@pytest.mark.parametrize("options", [{"backoff": -1.0}, {"timeout": 0.0}, {"timeout": float("nan")}])
def test_bad_timeout_or_backoff_is_a_clear_error_at_construction(options):
    with pytest.raises(BackendError, match="timeout must be > 0"):
        OpenAIModel("m", "http://127.0.0.1:9/v1", **options)


def test_server_down_is_a_clear_error():
    port = free_port()  # nothing listens there
    m = OpenAIModel("m", f"http://127.0.0.1:{port}/v1", retries=1, backoff=0.01, timeout=2)
    t = time.perf_counter()
    with pytest.raises(BackendError) as exc:
        m.generate([GenerationRequest.chat("hi")])
    assert "failed after 2 attempts" in exc.value.problem
    assert "server is running" in exc.value.fix
    assert time.perf_counter() - t < 10


@pytest.fixture(scope="module")
def served_tiny(tmp_path_factory):
    """`selflab serve`'s app over the tiny model, on a real uvicorn server in a thread."""
    import uvicorn

    from selflab.models.server import create_app
    from selflab.models.testing import tiny_llama

    folder = tiny_llama(tmp_path_factory.mktemp("tiny"))
    local = load_model(f"hf:{folder}")
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(local), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(200):
        if server.started:
            break
        time.sleep(0.05)
    yield local, f"http://127.0.0.1:{port}/v1"
    server.should_exit = True
    thread.join(timeout=10)


def test_openai_backend_matches_local_engine_through_serve(served_tiny):
    local, url = served_tiny
    remote = load_model(f"openai:tiny@{url}?concurrency=8")
    reqs = [GenerationRequest.chat(f"Count to {i}", max_new_tokens=4 + i) for i in range(8)]
    got = remote.generate(reqs)
    want = local.generate(reqs)
    assert [g.text for g in got] == [w.text for w in want]
    assert all(g.completion_tokens == w.completion_tokens for g, w in zip(got, want, strict=True))
    seeded = GenerationRequest.chat("Say something", max_new_tokens=8, temperature=1.0, seed=5)
    assert remote.generate([seeded])[0].text == local.generate([seeded])[0].text


def test_openai_backend_score_matches_local(served_tiny):
    local, url = served_tiny
    remote = load_model(f"openai:tiny@{url}")
    prompt = "The capital of France is"
    conts = [" Paris", " London and"]
    got = remote.score(prompt, conts)
    want = local.score(prompt, conts)
    assert got == pytest.approx(want, abs=1e-3)
