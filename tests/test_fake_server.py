"""Tests of the fake OpenAI server, driven by the real openai SDK (no monkeypatching)."""

from __future__ import annotations

import asyncio
import base64
import http.client
import json
import math
import os
import re
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import openai
import pytest

from promptgauge.testing import fake_server
from promptgauge.testing.fake_server import FAULT_KINDS, FakeOpenAIServer, RecordedRequest, embed_text


@pytest.fixture(scope="module")
def shared_server():
    """One server for the module; `srv` resets it before each test."""
    with FakeOpenAIServer(seed=0) as server:
        yield server


@pytest.fixture
def srv(shared_server):
    """The module's server, back to its initial behaviour, no faults and empty stats."""
    shared_server.reset()
    return shared_server


@pytest.fixture
def client(srv):
    """A real sync client without retries."""
    with openai.OpenAI(base_url=srv.base_url, api_key="test-key", max_retries=0) as c:
        yield c


def ask(client, text, **kwargs):
    """One chat completion with a single user message."""
    return client.chat.completions.create(model="m", messages=[{"role": "user", "content": text}], **kwargs)


def cosine(a, b):
    return sum(x * y for x, y in zip(a, b, strict=True)) / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))


# -- replies -------------------------------------------------------------------


def test_chat_completion_shape_content_and_usage(srv, client):
    response = client.chat.completions.create(
        model="gpt-test",
        messages=[
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "hello big world"},
        ],
    )
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/v1", srv.base_url)
    assert response.object == "chat.completion"
    assert response.id.startswith("chatcmpl-")
    assert response.model == "gpt-test"
    assert len(response.choices) == 1
    choice = response.choices[0]
    assert choice.finish_reason == "stop"
    assert choice.message.role == "assistant"
    assert choice.message.content == "echo: hello big world"
    assert (response.usage.prompt_tokens, response.usage.completion_tokens, response.usage.total_tokens) == (6, 4, 10)


def test_reply_directive_anywhere_wins(client):
    assert ask(client, "Question?\nREPLY: The answer is 42.").choices[0].message.content == "The answer is 42."
    response = client.chat.completions.create(
        model="m",
        messages=[
            {"role": "system", "content": "Be nice.\n  REPLY: from system"},
            {"role": "user", "content": [{"type": "text", "text": "no directive here"}]},
        ],
    )
    assert response.choices[0].message.content == "from system"


def test_replies_mapping_and_custom_responder(srv, client):
    srv.replies["What is 2+2?"] = "4"
    assert ask(client, "What is 2+2?").choices[0].message.content == "4"
    assert ask(client, "What is 3+3?").choices[0].message.content == "echo: What is 3+3?"

    srv.responder = lambda request: request["model"].upper() + "!"
    assert ask(client, "anything").choices[0].message.content == "M!"


def test_responder_error_is_a_500_naming_it(srv, client):
    def broken(request):
        raise KeyError("oops")

    srv.responder = broken
    with pytest.raises(openai.InternalServerError, match="Responder failed"):
        ask(client, "x")


def test_bad_request_is_a_400(client):
    with pytest.raises(openai.BadRequestError, match="messages"):
        client.chat.completions.create(model="m", messages=[])


def test_streaming_chat_completion(client):
    stream = ask(client, "stream me  please", stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "echo: stream me  please"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage.completion_tokens == 4


def test_legacy_completions_one_choice_per_prompt(client):
    response = client.completions.create(model="davinci", prompt=["say hi", "x\nREPLY: done"])
    assert response.object == "text_completion"
    assert [c.text for c in response.choices] == ["echo: say hi", "done"]
    assert [c.finish_reason for c in response.choices] == ["stop", "stop"]
    assert (response.usage.prompt_tokens, response.usage.completion_tokens) == (5, 4)


def test_models_listing(client):
    assert [m.id for m in client.models.list().data] == list(fake_server.DEFAULT_MODELS)


def test_unknown_route_is_a_json_404(srv):
    connection = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=5)
    connection.request("POST", "/v1/nothing", body=b"{}", headers={"Content-Type": "application/json"})
    response = connection.getresponse()
    assert response.status == 404
    assert json.loads(response.read())["error"]["code"] == "not_found"
    connection.close()


# -- embeddings ----------------------------------------------------------------


def test_embeddings_shape_determinism_and_formats(srv, client):
    texts = ["The cat sat on the mat.", "A cat sat on a mat", "Stock prices fell sharply today"]
    first = client.embeddings.create(model="emb", input=texts, encoding_format="float")
    again = client.embeddings.create(model="emb", input=texts)  # the SDK asks for base64 by default
    assert [d.index for d in first.data] == [0, 1, 2]
    vectors = [d.embedding for d in first.data]
    assert all(len(v) == 64 for v in vectors)
    assert all(abs(math.sqrt(sum(x * x for x in v)) - 1.0) < 1e-9 for v in vectors)
    assert vectors == [embed_text(t) for t in texts]
    for v, w in zip(vectors, (d.embedding for d in again.data), strict=True):
        assert max(abs(x - y) for x, y in zip(v, w, strict=True)) < 1e-6  # float32 round trip
    assert cosine(vectors[0], vectors[1]) > cosine(vectors[0], vectors[2])
    assert first.usage.prompt_tokens == 6 + 6 + 5
    assert len(client.embeddings.create(model="emb", input="x", dimensions=8).data[0].embedding) == 8


def test_embeddings_base64_is_little_endian_float32(srv):
    connection = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=5)
    body = json.dumps({"model": "e", "input": "red apple", "encoding_format": "base64"}).encode()
    connection.request("POST", "/v1/embeddings", body=body, headers={"Content-Type": "application/json"})
    data = json.loads(connection.getresponse().read())["data"][0]["embedding"]
    connection.close()
    decoded = struct.unpack("<64f", base64.b64decode(data))
    assert max(abs(x - y) for x, y in zip(decoded, embed_text("red apple"), strict=True)) < 1e-6


def test_embed_text_properties():
    assert embed_text("Hello, WORLD") == embed_text("hello world")
    assert embed_text("") == embed_text("!!!")
    assert cosine(embed_text("apple banana"), embed_text("banana apple")) == pytest.approx(1.0)


# -- faults --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "error"),
    [
        ("429", openai.RateLimitError),
        ("500", openai.InternalServerError),
        ("slow", openai.APITimeoutError),
        ("drop", openai.APIConnectionError),
        # A 200 whose JSON body does not parse: the SDK lets json.JSONDecodeError through unwrapped.
        ("malformed", json.JSONDecodeError),
    ],
)
def test_each_fault_kind_raises_its_client_error(srv, client, kind, error):
    srv.slow_seconds = 0.5
    srv.fail_next(kind)
    with pytest.raises(error) as caught:
        ask(client, "hi", timeout=0.2)
    if kind == "drop":
        assert not isinstance(caught.value, openai.APITimeoutError)
    assert srv.fault_count == {kind: 1}
    assert ask(client, "again", timeout=2).choices[0].message.content == "echo: again"


def test_429_carries_retry_after_and_openai_error_body(srv, client):
    srv.set_faults(0.0, retry_after=0.25)
    srv.fail_next("429")
    with pytest.raises(openai.RateLimitError) as caught:
        ask(client, "hi")
    headers = caught.value.response.headers
    assert headers["retry-after"] == "0.25"
    assert headers["retry-after-ms"] == "250"
    assert caught.value.code == "rate_limit_exceeded"


def test_sdk_retry_honours_retry_after(srv):
    srv.fail_next("429")
    with openai.OpenAI(base_url=srv.base_url, api_key="k", max_retries=1) as retrying:
        started = time.perf_counter()
        assert ask(retrying, "hi").choices[0].message.content == "echo: hi"
        assert time.perf_counter() - started >= 0.05
    assert srv.request_count == 2


def test_fail_next_queues_n_faults_in_order(srv, client):
    srv.fail_next("500", n=2)
    srv.fail_next("429")
    for error in (openai.InternalServerError, openai.InternalServerError, openai.RateLimitError):
        with pytest.raises(error):
            ask(client, "x")
    assert ask(client, "x").choices[0].message.content == "echo: x"
    assert srv.fault_count == {"500": 2, "429": 1}


def test_random_fault_rate_is_about_as_configured_and_seeded(srv, client):
    def outcomes(n):
        result = []
        for i in range(n):
            try:
                ask(client, f"q{i}")
                result.append("ok")
            except openai.RateLimitError:
                result.append("429")
            except openai.InternalServerError:
                result.append("500")
        return result

    srv.set_faults(0.2, kinds=("429", "500"), seed=123)
    first = outcomes(200)
    failures = 200 - first.count("ok")
    assert 20 <= failures <= 60
    assert first.count("429") > 0 and first.count("500") > 0
    assert sum(srv.fault_count.values()) == failures

    srv.set_faults(0.2, kinds=("429", "500"), seed=123)
    assert outcomes(200) == first


def test_set_faults_and_fail_next_validate_arguments(srv):
    with pytest.raises(ValueError, match="fault kinds"):
        srv.set_faults(0.1, kinds=("418",))
    with pytest.raises(ValueError, match="between 0 and 1"):
        srv.set_faults(1.5)
    with pytest.raises(ValueError, match="unknown fault kind"):
        srv.fail_next("timeout")
    assert set(FAULT_KINDS) == {"429", "500", "slow", "malformed", "drop"}


# -- latency, concurrency, keep-alive, stats -------------------------------------


def test_latency_is_a_lower_bound(srv, client):
    srv.latency = 0.15
    started = time.perf_counter()
    ask(client, "slowly")
    assert time.perf_counter() - started >= 0.15


def test_async_client_requests_run_concurrently(srv):
    srv.latency = 0.1

    async def run():
        async with openai.AsyncOpenAI(base_url=srv.base_url, api_key="k", max_retries=0) as aclient:
            calls = [ask_async(aclient, f"q{i}") for i in range(20)]
            return await asyncio.gather(*calls)

    async def ask_async(aclient, text):
        response = await aclient.chat.completions.create(model="m", messages=[{"role": "user", "content": text}])
        return response.choices[0].message.content

    assert asyncio.run(run()) == [f"echo: q{i}" for i in range(20)]
    assert srv.max_concurrent >= 5
    assert srv.request_count == 20


def test_keep_alive_reuses_one_connection(srv, client):
    for i in range(10):
        ask(client, str(i))
    assert srv.connection_count == 1


def test_stats_record_requests_and_reset(srv, client):
    ask(client, "first")
    client.models.list()
    assert srv.request_count == 2
    path, body = srv.requests[0]
    assert path == "/v1/chat/completions"
    assert body["messages"] == [{"role": "user", "content": "first"}]
    assert srv.requests[1] == RecordedRequest("/v1/models", None)
    srv.reset_stats()
    assert (srv.request_count, srv.requests, srv.fault_count) == (0, [], {})


# -- Azure, auth, lifecycle, CLI -------------------------------------------------


def test_azure_paths(srv):
    azure = openai.AzureOpenAI(azure_endpoint=srv.root_url, api_key="x", api_version="2024-06-01", max_retries=0)
    with azure:
        chat = azure.chat.completions.create(model="my-deploy", messages=[{"role": "user", "content": "hi azure"}])
        embedding = azure.embeddings.create(model="my-embed", input="hi azure")
    assert chat.choices[0].message.content == "echo: hi azure"
    assert embedding.data[0].embedding == pytest.approx(embed_text("hi azure"), abs=1e-6)
    assert [path for path, _ in srv.requests] == [
        "/openai/deployments/my-deploy/chat/completions",
        "/openai/deployments/my-embed/embeddings",
    ]


def test_api_key_is_checked_when_configured():
    with FakeOpenAIServer(api_key="sekret") as server:
        with openai.OpenAI(base_url=server.base_url, api_key="wrong", max_retries=0) as wrong:
            with pytest.raises(openai.AuthenticationError):
                ask(wrong, "hi")
        with openai.OpenAI(base_url=server.base_url, api_key="sekret", max_retries=0) as right:
            assert ask(right, "hi").choices[0].message.content == "echo: hi"
        azure = openai.AzureOpenAI(
            azure_endpoint=server.root_url, api_key="sekret", api_version="2024-06-01", max_retries=0
        )
        with azure:
            assert azure.chat.completions.create(model="d", messages=[{"role": "user", "content": "a"}]).choices


def test_stop_closes_keep_alive_connections_and_restart_works():
    server = FakeOpenAIServer().start()
    with openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0) as c:
        ask(c, "before")
        server.stop()
        with pytest.raises(openai.APIConnectionError):
            ask(c, "after stop")
        with pytest.raises(RuntimeError, match="not running"):
            _ = server.base_url
        server.start()
        try:
            assert ask(c, "restarted").choices[0].message.content == "echo: restarted"
        finally:
            server.stop()


def test_cli_serves_until_interrupted():
    src = Path(fake_server.__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(src), os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, "-m", "promptgauge.testing.fake_server", "--port", "0", "--fault-rate", "0"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) as process:
        try:
            base_url = re.search(r"http://\S+/v1", process.stdout.readline()).group(0)
            with openai.OpenAI(base_url=base_url, api_key="k", max_retries=0) as c:
                assert ask(c, "cli").choices[0].message.content == "echo: cli"
            process.send_signal(signal.SIGINT)
            assert process.wait(timeout=5) == 0
            assert process.stderr.read() == ""
        finally:
            if process.poll() is None:
                process.kill()
