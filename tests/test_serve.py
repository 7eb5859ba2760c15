"""`bestofn serve` on scripted models with known answers, through the official openai client.

A real uvicorn server on a free 127.0.0.1 port, in a thread of the test process, with scripted models injected
through the server's own API (``Server(config, settings, models=ScriptedModels(...))``): every answer,
candidate, reward and token count below is worked out by hand from the script. The tiny real models (decoding
steps, cancellation, deadlines, SIGTERM) are in tests/test_serve_models.py.
"""

from __future__ import annotations

import json
import threading
import time

import httpx
import openai
import pytest

from bestofn import cli
from bestofn.config import BestOfNConfig
from bestofn.errors import BestOfNError
from bestofn.prompts import system_prompt_for
from bestofn.serve.app import serving
from bestofn.serve.settings import ServeConfig
from bestofn.testing import make_tokenizer
from bestofn.testing.scripted import (Script, ScriptedBackend, ScriptedModels, ScriptedPRM, ScriptedProblem,
                                      ScriptedTreeBackend, ScriptedTreePRM, Solution, TreeRules)

MODEL = "scripted-generator"
Q = "What is $2+3$?"  # the hand-worked problem
#                       answer, step rewards (aggregation "last": the last one is the reward)
SAMPLES = [Solution("5", (0.9, 0.3)),    # 0: reward 0.3
           Solution("6", (0.5, 0.9)),    # 1: reward 0.9
           Solution("5", (0.2, 0.4)),    # 2: reward 0.4
           Solution("7", (0.1, 0.92)),   # 3: reward 0.92
           Solution(None, (0.5, 0.95)),  # 4: reward 0.95, no answer: never chosen
           Solution("6", (0.5, 0.1))]    # 5: reward 0.1
# By hand, over all 6: groups 5 = {0, 2} (2 votes, 0.7), 6 = {1, 5} (2 votes, 1.0), 7 = {3} (1 vote, 0.92).
#   majority: 5 and 6 tie at 2 votes, 5 appears first -> 5, shown by its best member, sample 2 (0.4)
#   weighted_bon: 6 (1.0 > 0.92 > 0.7) -> sample 1;  naive_bon: best reward with an answer: sample 3 -> 7
ALL_RIGHT = "What is $10-4$?"  # every sample answers 6: the 100% case
NO_ANSWER = "What is $x$ if nothing is known?"  # no sample has an answer: the 0% case
OTHERS = [f"What is ${k}+{k}$?" for k in range(16)]  # one problem per concurrent request


def script() -> Script:
    problems = [ScriptedProblem(Q, Solution("5"), SAMPLES),
                ScriptedProblem(ALL_RIGHT, Solution("6"), [Solution("6", (0.5, r)) for r in (0.2, 0.8, 0.5, 0.6)]),
                ScriptedProblem(NO_ANSWER, Solution(None), [Solution(None, (0.3, r)) for r in (0.2, 0.7, 0.4, 0.1)])]
    problems += [ScriptedProblem(q, Solution(str(2 * k)), [Solution(str(2 * k), (0.5, 0.6)), Solution("1", (0.5, 0.2))])
                 for k, q in enumerate(OTHERS)]
    return Script(problems, separator="\n")


@pytest.fixture(scope="module")
def tokenizer():
    return make_tokenizer()


@pytest.fixture(scope="module")
def server(tokenizer):
    """A running server over the scripted models: ``(base_url, Server)``."""
    s = script()
    models = ScriptedModels(ScriptedBackend(s, tokenizer), ScriptedPRM(s), check_models=False)
    config = BestOfNConfig(generator=MODEL, prm="scripted-prm", n=6, max_new_tokens=512)
    settings = ServeConfig(port=0, max_best_of=6, max_body_bytes=20_000, batch_window_ms=30, concurrency=16,
                           max_queue=0)
    with serving(config, settings, models) as running:
        yield running


@pytest.fixture(scope="module")
def client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server[0]}/v1", api_key="unused", max_retries=0, timeout=30)


def ask(client: openai.OpenAI, question: str = Q, **kwargs):
    return client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": question}], **kwargs)


def extras(response) -> dict:
    return response.model_extra["bestofn"]


def tokens(tokenizer, text: str) -> int:
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


# --- answers chosen as worked out by hand ---------------------------------------------------------------------
@pytest.mark.parametrize("selection, answer, sample", [("majority", "5", 2), ("weighted_bon", "6", 1),
                                                       ("naive_bon", "7", 3)])
def test_each_selection_rule_picks_the_hand_worked_answer(client, selection, answer, sample):
    response = ask(client, extra_body={"selection": selection})
    b = extras(response)
    assert b["answer"] == answer and b["selection"] == selection and b["method"] == "best_of_n"
    assert response.choices[0].message.content == b["candidates"][sample]["text"]
    assert f"\\boxed{{{answer}}}" in response.choices[0].message.content
    assert [c["chosen"] for c in b["candidates"]] == [i == sample for i in range(6)]
    assert [c["answer"] for c in b["candidates"]] == ["5", "6", "5", "7", None, "6"]
    assert [c["reward"] for c in b["candidates"]] == pytest.approx([0.3, 0.9, 0.4, 0.92, 0.95, 0.1])
    assert [c["step_rewards"] for c in b["candidates"]][3] == pytest.approx([0.1, 0.92])
    assert b["samples_used"] == 6 and response.choices[0].finish_reason == "stop"


def test_weighted_groups_usage_and_extras(client, tokenizer):
    response = ask(client, extra_body={"best_of": 6})
    b = extras(response)
    assert list(b) == ["answer", "method", "selection", "samples_used", "prm_tokens", "candidates", "answer_groups",
                       "timings"]
    assert set(b["candidates"][0]) == {"text", "answer", "reward", "step_rewards", "chosen"}
    assert [(g["answer"], g["count"]) for g in b["answer_groups"]] == [("6", 2), ("7", 1), ("5", 2)]
    assert [g["weight"] for g in b["answer_groups"]] == pytest.approx([1.0, 0.92, 0.7])
    assert set(b["timings"]) == {"queued", "generation", "scoring", "selection"}
    # usage: the rendered prompt (server's system prompt, the PRM's steps one per line) and all 6 samples' tokens
    prompt = tokenizer.apply_chat_template(
        [{"role": "system", "content": system_prompt_for(BestOfNConfig().system_prompt, "\n")},
         {"role": "user", "content": Q}], tokenize=False, add_generation_prompt=True)
    texts = [s.text("\n", f"0-{i}") for i, s in enumerate(SAMPLES)]
    assert response.usage.prompt_tokens == tokens(tokenizer, prompt)
    assert response.usage.completion_tokens == sum(tokens(tokenizer, t) + 1 for t in texts)  # + each stop token
    assert response.usage.total_tokens == response.usage.prompt_tokens + response.usage.completion_tokens
    assert [c["text"] for c in b["candidates"]] == texts


def test_best_of_takes_the_first_n_samples(client):
    b = extras(ask(client, extra_body={"best_of": 3, "selection": "weighted_bon"}))
    # samples 0-2: 5 = {0, 2} (0.7), 6 = {1} (0.9) -> 6
    assert b["answer"] == "6" and len(b["candidates"]) == 3 and b["samples_used"] == 3
    assert [(g["answer"], g["count"]) for g in b["answer_groups"]] == [("6", 1), ("5", 2)]


def test_n_choices_are_the_best_groups_best_solutions(client):
    response = ask(client, n=3)
    contents = [c.message.content for c in response.choices]
    b = extras(response)
    assert [c.index for c in response.choices] == [0, 1, 2]
    assert contents == [b["candidates"][i]["text"] for i in (1, 3, 2)]  # 6 (1.0), 7 (0.92), 5's best (0.4)
    assert sum(c["chosen"] for c in b["candidates"]) == 3


def test_the_100_and_0_percent_cases(client):
    b = extras(ask(client, ALL_RIGHT, extra_body={"best_of": 4}))
    assert b["answer"] == "6" and b["answer_groups"] == [{"answer": "6", "count": 4, "weight": pytest.approx(2.1)}]
    assert [c["chosen"] for c in b["candidates"]] == [False, True, False, False]  # the best of the group: 0.8
    response = ask(client, NO_ANSWER, extra_body={"best_of": 4})
    b = extras(response)
    assert b["answer"] is None and b["answer_groups"] == []
    assert response.choices[0].message.content == b["candidates"][1]["text"]  # the highest reward, 0.7


def test_models_and_health(server, client):
    assert [m.id for m in client.models.list().data] == [MODEL]
    assert httpx.get(f"{server[0]}/health").status_code == 200


# --- streaming ----------------------------------------------------------------------------------------------
def test_streaming_with_the_openai_client(client):
    full = ask(client)
    chunks = list(ask(client, stream=True, stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == full.choices[0].message.content
    progress = [c.model_extra["bestofn"]["progress"] for c in chunks
                if "progress" in (c.model_extra.get("bestofn") or {})]
    assert [p["stage"] for p in progress] == ["generation", "scoring"]
    finished = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(finished) == 1 and finished[0].choices[0].finish_reason == "stop"
    assert finished[0].model_extra["bestofn"]["answer"] == "6"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == full.usage.completion_tokens
    assert chunks[-1].usage.prompt_tokens == full.usage.prompt_tokens


def test_stream_without_usage_ends_with_done(server):
    body = {"model": MODEL, "messages": [{"role": "user", "content": Q}], "stream": True}
    with httpx.stream("POST", f"{server[0]}/v1/chat/completions", json=body, timeout=30) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        events = [line for line in r.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "data: [DONE]"
    assert all("usage" not in json.loads(e[6:]) for e in events[:-1])


# --- bad requests, in the OpenAI shape, and the server keeps serving --------------------------------------------
@pytest.mark.parametrize("change, param", [
    ({"best_of": 0}, "best_of"), ({"best_of": -2}, "best_of"), ({"best_of": 2.5}, "best_of"),
    ({"best_of": "3"}, "best_of"), ({"best_of": 7}, "best_of"),  # above --max-best-of 6
    ({"method": "tree_of_thought"}, "method"), ({"selection": "best"}, "selection"),
    ({"aggregation": "max"}, "aggregation"), ({"temperature": -1.0}, "temperature"), ({"top_p": 1.5}, "top_p"),
    ({"max_tokens": 0}, "max_tokens"), ({"max_tokens": 10**6}, "max_tokens"), ({"n": 7}, "n"),
    ({"messages": []}, "messages"), ({"messages": [{"role": "system", "content": "hi"}]}, "messages"),
    ({"deadline_s": -1}, "deadline_s"), ({"frobnicate": 1}, "frobnicate"),
    ({"method": "beam_search", "best_of": 6, "beam_width": 4}, "best_of"),  # n must be a multiple of beam_width
])
def test_bad_parameters_are_400_in_the_openai_shape(client, change, param):
    body = {"messages": [{"role": "user", "content": Q}], **change}
    messages = body.pop("messages")
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model=MODEL, messages=messages, extra_body=body)
    error = e.value.body
    assert e.value.status_code == 400 and set(error) >= {"message", "type", "param", "code"}
    assert error["param"] == param and error["type"] == "invalid_request_error" and error["message"]
    assert extras(ask(client))["answer"] == "6"  # still serving


def test_unknown_model_is_404(client):
    with pytest.raises(openai.NotFoundError) as e:
        client.chat.completions.create(model="gpt-4", messages=[{"role": "user", "content": Q}])
    assert e.value.body["code"] == "model_not_found" and e.value.body["param"] == "model"


def test_malformed_json_and_oversized_body(server):
    url = f"{server[0]}/v1/chat/completions"
    r = httpx.post(url, content=b'{"model": "x", "messages": [', headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json"
    big = {"model": MODEL, "messages": [{"role": "user", "content": "x" * 30_000}]}  # --max-body-bytes 20000
    r = httpx.post(url, json=big)
    assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"
    data = json.dumps(big).encode()  # no Content-Length: a chunked body is counted as it arrives
    r = httpx.post(url, content=iter([data[:10_000], data[10_000:]]), headers={"content-type": "application/json"})
    assert r.status_code == 413


def test_api_key(tokenizer, monkeypatch):
    s = script()
    models = ScriptedModels(ScriptedBackend(s, tokenizer), ScriptedPRM(s), check_models=False)
    monkeypatch.setenv("BESTOFN_API_KEY", "sk-test")  # the environment variable is how the key is given here
    settings = ServeConfig(port=0)
    with serving(BestOfNConfig(generator=MODEL, n=4), settings, models) as (url, _):
        good = openai.OpenAI(base_url=f"{url}/v1", api_key="sk-test", max_retries=0)
        assert extras(ask(good, ALL_RIGHT))["answer"] == "6"
        with pytest.raises(openai.AuthenticationError) as e:
            ask(openai.OpenAI(base_url=f"{url}/v1", api_key="sk-wrong", max_retries=0), ALL_RIGHT)
        assert e.value.body["type"] == "authentication_error"
        assert httpx.get(f"{url}/v1/models").status_code == 401
        assert httpx.get(f"{url}/health").status_code == 200  # /health needs no key


# --- concurrency: 16 requests at once, batched, each answered with its own problem ---------------------------------
def test_sixteen_concurrent_requests_are_batched(server, client):
    stats = server[1].batcher.stats
    calls_before, jobs_before = stats.generate_calls, stats.generate_jobs
    answers: dict[int, str] = {}

    def one(k: int) -> None:
        answers[k] = extras(ask(client, OTHERS[k], extra_body={"best_of": 2}))["answer"]

    threads = [threading.Thread(target=one, args=(k,)) for k in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert answers == {k: str(2 * k) for k in range(16)}  # each request got its own problem's samples back
    assert stats.generate_jobs - jobs_before == 16
    assert stats.generate_calls - calls_before < 16  # some calls carried several requests' work
    assert stats.largest_generate_batch > 1
    assert server[1].in_flight == 0


def test_queue_full_is_429(server, client):
    srv = server[1]
    srv.in_flight += srv.settings.concurrency  # the server is full (max_queue 0)
    try:
        with pytest.raises(openai.RateLimitError) as e:
            ask(client)
        assert e.value.body["code"] == "queue_full"
    finally:
        srv.in_flight -= srv.settings.concurrency
    assert extras(ask(client))["answer"] == "6"


# --- a search through the server: its pruned beams are paid for too ------------------------------------------
def test_beam_search_answer_and_usage_count_pruned_beams(tokenizer):
    q = "How many sides has a heptagon?"
    # Steps under first step "0" are rewarded 0.9 and answer 7; all others 0.4 and answer 3; second steps end.
    rules = TreeRules(reward=lambda k, label: 0.9 if label.startswith("0") else 0.4,
                      end=lambda k, label: "stop" if "." in label else None,
                      answer=lambda k, label: "7" if label.startswith("0") else "3")
    models = ScriptedModels(ScriptedTreeBackend([q], rules, tokenizer), ScriptedTreePRM([q], rules),
                            check_models=False)
    config = BestOfNConfig(generator=MODEL, method="beam_search", n=4, beam_width=2, num_iterations=2)
    with serving(config, ServeConfig(port=0), models) as (url, _):
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
        response = ask(client, q)
    b = extras(response)
    # By hand: iteration 0 writes first steps 0, 1 (beam 1) and 2, 3 (beam 2); the top n/M = 2 are kept: 0 (0.9)
    # and 1 (0.4, the earlier of the ties); 2 and 3 are pruned. The last iteration ends 0.0, 0.1, 1.0, 1.1.
    assert b["method"] == "beam_search" and b["answer"] == "7"
    assert [(c["answer"], c["reward"], c["chosen"]) for c in b["candidates"]] == [
        ("7", 0.9, True), ("7", 0.9, False), ("3", 0.4, False), ("3", 0.4, False)]
    assert [(g["answer"], g["count"]) for g in b["answer_groups"]] == [("7", 2), ("3", 2)]
    first = [f"<step {label}> we simplify.\n" for label in "0123"]
    last = [f"<step {label}> the final answer is $\\boxed{{{a}}}$." for label, a in
            (("0.0", 7), ("0.1", 7), ("1.0", 3), ("1.1", 3))]
    assert response.usage.completion_tokens == (sum(tokens(tokenizer, t) for t in first)  # pruned 2 and 3 included
                                                + sum(tokens(tokenizer, t) + 1 for t in last))


def test_the_server_prompt_settings_apply(tokenizer):
    """The request's last user message goes through the server's user_template, as a run's problem does."""
    s = script()
    models = ScriptedModels(ScriptedBackend(s, tokenizer), ScriptedPRM(s), check_models=False)
    config = BestOfNConfig(generator=MODEL, n=4, user_template="Solve this: {problem}", system_prompt="Be exact.")
    with serving(config, ServeConfig(port=0), models) as (url, _):
        response = ask(openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0), ALL_RIGHT)
    prompt = tokenizer.apply_chat_template([{"role": "system", "content": "Be exact."},
                                            {"role": "user", "content": f"Solve this: {ALL_RIGHT}"}],
                                           tokenize=False, add_generation_prompt=True)
    assert response.usage.prompt_tokens == tokens(tokenizer, prompt)


class SlowBackend(ScriptedBackend):
    """The scripted generator, taking ``delay`` seconds per call: a busy generator."""

    delay = 1.5

    def generate(self, prompts, **kwargs):
        time.sleep(self.delay)
        return super().generate(prompts, **kwargs)


def test_queued_work_of_a_disconnected_client_is_dropped(tokenizer):
    s = script()
    backend = SlowBackend(s, tokenizer)
    models = ScriptedModels(backend, ScriptedPRM(s), check_models=False)
    with serving(BestOfNConfig(generator=MODEL, n=2), ServeConfig(port=0, batch_window_ms=1), models) as (url, server):
        first: list = []
        busy = threading.Thread(target=lambda: first.append(
            extras(ask(openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0), OTHERS[1]))))
        busy.start()  # holds the generator for 1.5 s
        time.sleep(0.3)
        body = {"model": MODEL, "messages": [{"role": "user", "content": OTHERS[2]}]}
        with pytest.raises(httpx.ReadTimeout):  # queued behind the first; the client leaves after 0.5 s
            httpx.post(f"{url}/v1/chat/completions", json=body, timeout=httpx.Timeout(0.5))
        busy.join(timeout=30)
        started = time.monotonic()
        while server.in_flight and time.monotonic() - started < 10:
            time.sleep(0.05)
        assert first[0]["answer"] == "2" and server.in_flight == 0
        assert server.batcher.stats.dropped_jobs == 1  # the second request's call never reached the generator
        assert len(backend.calls) == 1


class SlowLoading(ScriptedModels):
    """Scripted models whose generator takes a while to load."""

    def generator(self, config):
        time.sleep(1.0)
        return super().generator(config)


class Unloadable(ScriptedModels):
    def generator(self, config):
        raise BestOfNError("the generator folder /nowhere does not exist; pass an existing model folder")


def test_503_while_the_models_load_then_200(tokenizer):
    s = script()
    models = SlowLoading(ScriptedBackend(s, tokenizer), ScriptedPRM(s), check_models=False)
    with serving(BestOfNConfig(generator=MODEL, n=4), ServeConfig(port=0), models, loaded=False) as (url, server):
        assert httpx.get(f"{url}/health").status_code == 503
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
        with pytest.raises(openai.APIStatusError) as e:
            ask(client, ALL_RIGHT)
        assert e.value.status_code == 503 and e.value.body["code"] == "model_loading"
        started = time.monotonic()
        while httpx.get(f"{url}/health").status_code != 200:
            assert time.monotonic() - started < 30
            time.sleep(0.05)
        assert extras(ask(client, ALL_RIGHT))["answer"] == "6"


def test_bestofn_serve_with_models_that_cannot_load_is_one_error_line(tokenizer, capsys):
    s = script()
    models = Unloadable(ScriptedBackend(s, tokenizer), ScriptedPRM(s), check_models=False)
    assert cli.main(["serve", "--generator", MODEL, "--port", "0"], models=models) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("bestofn: error: the generator folder /nowhere does not exist")


def test_sampling_parameters_reach_the_generator(server, client):
    backend = server[1].batcher.generator
    ask(client, ALL_RIGHT, temperature=0.5, seed=7, extra_body={"best_of": 4})
    first = backend.calls[-1]
    ask(client, ALL_RIGHT, temperature=0.5, seed=7, extra_body={"best_of": 4})
    again = backend.calls[-1]
    ask(client, ALL_RIGHT, temperature=0.5, seed=8, extra_body={"best_of": 4})
    other = backend.calls[-1]
    assert first["temperature"] == 0.5 and first["n"] == 4
    assert first["seed"] == again["seed"] != other["seed"]  # a request's seed decides its samples


def test_max_completion_tokens_and_aggregation(client):
    # Each scripted sample is cut to 5 tokens: 6 samples x 5 tokens (max_completion_tokens wins over max_tokens).
    response = ask(client, max_tokens=50, max_completion_tokens=5)
    assert response.usage.completion_tokens == 6 * 5
    # mean of the step rewards: 0.6, 0.7, 0.3, 0.51, 0.725, 0.3 -> naive Best-of-N picks sample 1 (6), not 3 (7)
    b = extras(ask(client, extra_body={"selection": "naive_bon", "aggregation": "mean"}))
    assert [c["reward"] for c in b["candidates"]] == pytest.approx([0.6, 0.7, 0.3, 0.51, 0.725, 0.3])
    assert b["answer"] == "6" and b["candidates"][1]["chosen"]


def test_a_draw_past_sample_0_reaches_the_generator_with_its_index(tokenizer):
    """Adaptive rounds draw samples first..first+count-1: the batcher passes ``first`` on and never merges calls
    that start at different samples (a merged call has one ``first``)."""
    from bestofn.serve.batching import Batcher, RequestModels, Ticket

    class Recording:
        tokenizer = make_tokenizer()

        def __init__(self):
            self.calls: list[dict] = []

        def generate(self, prompts, *, n, first=0, **kwargs):
            self.calls.append({"prompts": list(prompts), "n": n, "first": first})
            return [[Completion(f"{p} #{first + j}", 1, "stop") for j in range(n)] for p in prompts]

    from bestofn.backends.base import Completion

    generator = Recording()
    batcher = Batcher(generator, prm=None, window_s=0.2)  # a long window: both calls arrive inside it
    try:
        out: dict[int, list] = {}

        def draw(first: int) -> None:
            models = RequestModels(batcher, Ticket())
            out[first] = models.generate(["q"], n=2, temperature=0.8, top_p=1.0, max_new_tokens=8, seed=0, first=first)

        threads = [threading.Thread(target=draw, args=(f,)) for f in (0, 4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=10)
    finally:
        batcher.close()
    assert [c.text for c in out[0][0]] == ["q #0", "q #1"]
    assert [c.text for c in out[4][0]] == ["q #4", "q #5"]
    assert sorted(c["first"] for c in generator.calls) == [0, 4]


def test_an_adaptive_request_stops_when_its_rule_fires(client):
    # ALL_RIGHT's samples all answer 6: with esc in rounds of 2, the first round agrees and no more are drawn.
    r = ask(client, ALL_RIGHT, extra_body={"best_of": 4, "adaptive": "esc", "adaptive_batch": 2})
    assert r.model_extra["bestofn"]["samples_used"] == 2 and r.model_extra["bestofn"]["answer"] == "6"
    assert len(r.model_extra["bestofn"]["candidates"]) == 2
    # Q's first rounds disagree (5, 6 then 5, 7): esc draws all six.
    r = ask(client, Q, extra_body={"adaptive": "esc", "adaptive_batch": 2})
    assert r.model_extra["bestofn"]["samples_used"] == 6
    fixed = ask(client, ALL_RIGHT, extra_body={"best_of": 4})
    assert fixed.model_extra["bestofn"]["samples_used"] == 4
