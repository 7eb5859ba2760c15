"""`bestofn serve` on the tiny real models (transformers generator, Skywork-format PRM): decoding steps that a
disconnect stops, deadlines, honest token counts, and SIGTERM while requests are in flight (a subprocess).

The tiny generator's logits are nearly flat: it never writes its end-of-sequence token, so every sample runs
to max_tokens and its token count is known exactly. The peaked one ends some samples early (on its stop
token) and runs others long, which is what a deadline needs.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import openai
import pytest

from bestofn.config import BestOfNConfig
from bestofn.serve.app import serving
from bestofn.serve.settings import ServeConfig

ROOT = Path(__file__).resolve().parents[1]
Q = "What is $2+3$?"


def config(generator: Path, prm: Path, **more) -> BestOfNConfig:
    return BestOfNConfig(**{"generator": str(generator), "prm": str(prm), "device": "cpu", "n": 4,
                            "max_new_tokens": 24, **more})


@pytest.fixture(scope="module")
def flat(tiny_generator_dir, tiny_prm_dir):
    with serving(config(tiny_generator_dir, tiny_prm_dir), ServeConfig(port=0, batch_window_ms=20)) as running:
        yield running


def client(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=60)


def ask(url: str, model: str, **kwargs):
    return client(url).chat.completions.create(model=model, messages=[{"role": "user", "content": Q}], **kwargs)


def test_a_request_on_real_models_counts_every_token(flat, tiny_generator_dir):
    url, server = flat
    # top_p 0.01 keeps only the flat model's top token ("\n"): no sample ever stops early
    response = client(url).chat.completions.create(
        model=str(tiny_generator_dir), max_tokens=20, top_p=0.01, extra_body={"best_of": 3},
        messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": Q}])
    b = response.model_extra["bestofn"]
    assert len(b["candidates"]) == 3 and response.choices[0].finish_reason == "length"
    assert response.usage.completion_tokens == 3 * 20  # every sample ran to max_tokens: 3 x 20 tokens
    tok = server.batcher.tokenizer
    prompt = tok.apply_chat_template([{"role": "system", "content": "be brief"}, {"role": "user", "content": Q}],
                                     tokenize=False, add_generation_prompt=True)  # the request's own system prompt
    assert response.usage.prompt_tokens == len(tok(prompt, add_special_tokens=False)["input_ids"])
    assert all(0 <= c["reward"] <= 1 and len(c["step_rewards"]) >= 1 for c in b["candidates"])
    assert b["prm_tokens"] > 0


def test_a_search_runs_through_the_server(flat, tiny_generator_dir):
    url, _ = flat
    response = ask(url, str(tiny_generator_dir), max_tokens=8,
                   extra_body={"method": "dvts", "best_of": 4, "beam_width": 2, "num_iterations": 2})
    b = response.model_extra["bestofn"]
    assert b["method"] == "dvts" and 1 <= len(b["candidates"]) <= 4
    assert response.usage.completion_tokens > 0 and b["prm_tokens"] > 0


def test_a_disconnected_client_stops_its_decoding(flat, tiny_generator_dir):
    url, server = flat
    stats = server.batcher.stats
    steps_before, stopped_before = stats.decode_steps, stats.stopped_rows
    body = {"model": str(tiny_generator_dir), "messages": [{"role": "user", "content": Q}], "max_tokens": 1800,
            "best_of": 4, "top_p": 0.01}  # top_p 0.01: "\n" after "\n", never a stop token
    started = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):  # the client gives up after 1 s and closes its connection
        httpx.post(f"{url}/v1/chat/completions", json=body, timeout=httpx.Timeout(1.0))
    while server.in_flight and time.monotonic() - started < 30:
        time.sleep(0.05)
    assert server.in_flight == 0
    assert stats.stopped_rows - stopped_before == 4  # all 4 rows were stopped early
    steps = stats.decode_steps - steps_before
    assert 0 < steps < 1800  # decoding ended long before max_tokens
    time.sleep(0.5)
    assert stats.decode_steps - steps_before == steps  # and nothing runs for it any more


def test_a_short_request_is_answered_while_a_long_one_decodes(flat, tiny_generator_dir):
    """Item 4: a request never waits for an unrelated slow one longer than its own work. A long request (1800
    decoding steps) is decoding; a short one (8 steps) starts beside it and is answered while the long one runs."""
    url, server = flat
    stats = server.batcher.stats
    body = {"model": str(tiny_generator_dir), "messages": [{"role": "user", "content": Q}], "max_tokens": 1800,
            "best_of": 4, "top_p": 0.01, "deadline_s": 6}  # never a stop token: 1800 steps, or 6 s at most

    def long_request() -> None:
        httpx.post(f"{url}/v1/chat/completions", json=body, timeout=httpx.Timeout(30.0))

    steps_before = stats.decode_steps
    long = threading.Thread(target=long_request)
    long.start()
    until = time.monotonic() + 20
    while stats.decode_steps - steps_before < 20 and time.monotonic() < until:  # the long one is decoding
        time.sleep(0.01)
    short = ask(url, str(tiny_generator_dir), max_tokens=8, top_p=0.01, extra_body={"best_of": 2})  # no stop token
    assert long.is_alive() and server.in_flight >= 1  # the long request is still decoding
    assert short.usage.completion_tokens == 2 * 8 and stats.most_concurrent_calls >= 2
    long.join(30)


def test_a_search_through_the_server_reuses_its_prm_prefixes(flat, tiny_generator_dir):
    """The search's PRM prefix cache works through the server: the same search (same seed) scores the same
    rewards while the PRM runs fewer tokens."""
    url, _ = flat
    search = {"method": "beam_search", "best_of": 4, "beam_width": 2, "num_iterations": 3}
    cached = ask(url, str(tiny_generator_dir), max_tokens=8, seed=5, extra_body=search).model_extra["bestofn"]
    full = ask(url, str(tiny_generator_dir), max_tokens=8, seed=5,
               extra_body={**search, "prm_cache": False}).model_extra["bestofn"]
    assert [c["text"] for c in cached["candidates"]] == [c["text"] for c in full["candidates"]]
    for a, b in zip(cached["candidates"], full["candidates"]):
        assert a["step_rewards"] == pytest.approx(b["step_rewards"], abs=1e-5)
    assert 0 < cached["prm_tokens"] < full["prm_tokens"]


def test_deadline_without_a_finished_sample_is_504(flat, tiny_generator_dir):
    url, _ = flat
    with pytest.raises(openai.APIStatusError) as e:
        ask(url, str(tiny_generator_dir), max_tokens=1800, top_p=0.01, extra_body={"deadline_s": 0.3})
    assert e.value.status_code == 504 and e.value.body["code"] == "deadline_exceeded"
    assert e.value.body["type"] == "timeout_error"


def test_deadline_answers_from_the_samples_that_finished(peaked_generator_dir, tiny_prm_dir):
    cfg = config(peaked_generator_dir, tiny_prm_dir, n=8)
    with serving(cfg, ServeConfig(port=0)) as (url, server):
        full = ask(url, str(peaked_generator_dir), max_tokens=1800, seed=3)
        b = full.model_extra["bestofn"]
        assert b["samples_used"] == 8
        # the same samples (same seed) under a deadline: the ones that end early are kept, the long ones cut
        cut = ask(url, str(peaked_generator_dir), max_tokens=1800, seed=3, extra_body={"deadline_s": 1.5})
        c = cut.model_extra["bestofn"]
        assert 0 < c["samples_used"] < 8
        kept = {x["text"] for x in c["candidates"]}
        assert kept <= {x["text"] for x in b["candidates"]}  # each a finished sample of the full run
        assert cut.usage.completion_tokens < full.usage.completion_tokens


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_sigterm_drains_requests_in_flight_and_exits_0(tiny_generator_dir, tiny_prm_dir):
    tokens = 600  # enough decoding steps that both requests are still in flight 0.3 s after they start, idle or busy
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "bestofn.cli", "serve", "--generator", str(tiny_generator_dir), "--prm",
           str(tiny_prm_dir), "--device", "cpu", "--n", "4", "--max-new-tokens", str(tokens), "--port", str(port),
           "--drain-timeout-s", "60"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 240  # imports and loading, on a busy 2-core machine
        while True:
            assert proc.poll() is None, proc.stdout.read()
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the server did not become healthy"
            time.sleep(0.2)
        results: list = []

        def one() -> None:
            try:
                results.append(ask(url, str(tiny_generator_dir), top_p=0.01).usage.completion_tokens)
            except Exception as e:  # noqa: BLE001 - recorded and asserted below
                results.append(e)

        threads = [threading.Thread(target=one) for _ in range(2)]
        for t in threads:
            t.start()
        time.sleep(0.3)  # both are in flight (each decodes 4 x tokens tokens: seconds on this machine)
        assert results == []
        proc.send_signal(signal.SIGTERM)
        started = time.monotonic()
        for t in threads:
            t.join(timeout=60)
        assert proc.wait(timeout=60) == 0
        assert time.monotonic() - started < 60
        assert results == [4 * tokens, 4 * tokens]  # both finished in full
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{url}/health", timeout=1)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_prompt_longer_than_the_context_is_400(flat, tiny_generator_dir):
    url, _ = flat
    long = " ".join(["seven"] * 2100)  # the tiny generator's context is 2048 tokens
    with pytest.raises(openai.BadRequestError) as e:
        client(url).chat.completions.create(model=str(tiny_generator_dir), messages=[{"role": "user", "content": long}])
    assert e.value.body["code"] == "context_length_exceeded" and e.value.body["param"] == "messages"
    with pytest.raises(openai.BadRequestError) as e:  # fits, but not with 2000 more tokens
        ask(url, str(tiny_generator_dir), max_tokens=2000)
    assert e.value.body["param"] == "max_tokens" and "at most" in e.value.body["message"]
