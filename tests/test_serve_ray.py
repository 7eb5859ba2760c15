"""`bestofn serve --ray --replicas 2`: the same API from two Ray Serve replicas on a local cluster.

One short test (a local Ray cluster and two replicas take tens of seconds on 2 cores): both replicas run, and
concurrent requests through the one endpoint get the answers worked out by hand from the scripted models
(injected through the API, pickled to the replicas), errors in the OpenAI shape included. The cluster is
shut down at the end.
"""

from __future__ import annotations

import socket
import sys
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest

ray = pytest.importorskip("ray")
import ray.cloudpickle  # noqa: E402

from bestofn.config import BestOfNConfig  # noqa: E402
from bestofn.serve import ray_serve  # noqa: E402
from bestofn.serve.settings import ServeConfig  # noqa: E402
from bestofn.testing import make_tokenizer  # noqa: E402
from bestofn.testing.scripted import (Script, ScriptedBackend, ScriptedModels, ScriptedPRM,  # noqa: E402
                                      ScriptedProblem, Solution)

ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
Q = "What is $6 \\times 7$?"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_replicas_behind_one_endpoint():
    script = Script([ScriptedProblem(Q, Solution("42"), [Solution("42", (0.5, 0.9)), Solution("41", (0.5, 0.2)),
                                                         Solution("41", (0.5, 0.3))])])
    models = ScriptedModels(ScriptedBackend(script, make_tokenizer()), ScriptedPRM(script), check_models=False)
    port = _free_port()
    config = BestOfNConfig(generator="scripted", n=3, ray_address="local")
    settings = ServeConfig(port=port, replicas=2)
    ray.init(num_cpus=2, configure_logging=False, include_dashboard=False)
    try:
        ray_serve.start(config, settings, models)
        url = f"http://127.0.0.1:{port}"
        from ray import serve

        status = serve.status().applications[ray_serve.APP_NAME]
        replicas = status.deployments["bestofn-server"].replica_states
        assert replicas.get("RUNNING") == 2
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=60)

        def ask(selection: str):
            return client.chat.completions.create(model="scripted", messages=[{"role": "user", "content": Q}],
                                                  extra_body={"selection": selection})

        # weighted: 42 (0.9) beats 41 (0.2 + 0.3); majority: 41 (2 votes)
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(ask, ["weighted_bon", "majority"] * 4))
        assert [a.model_extra["bestofn"]["answer"] for a in answers] == ["42", "41"] * 4
        assert [m.id for m in client.models.list().data] == ["scripted"]
        r = httpx.post(f"{url}/v1/chat/completions", json={"model": "scripted", "messages": []})
        assert r.status_code == 400 and r.json()["error"]["param"] == "messages"
    finally:
        ray_serve.stop(started_here=False)
        ray.shutdown()
