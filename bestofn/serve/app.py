"""The OpenAI-compatible HTTP front door: FastAPI routes, the request and response shapes, errors, streaming.

    GET  /health                200 once the models are loaded, 503 before
    GET  /v1/models             the served model (the generator's id, or --served-model-name)
    POST /v1/chat/completions   a chat completion chosen by test-time compute (``stream: true``: SSE chunks)

A request is checked completely before any work (400/401/404/413 in the OpenAI error shape, one log line
each), admitted (429 when --concurrency + --max-queue requests are in flight), then solved in a worker thread by
:func:`bestofn.serve.answer.solve` while its model calls are batched with other requests'
(:mod:`bestofn.serve.batching`). A client that disconnects cancels its ticket: its queued work is dropped and
its decoding stops. SIGTERM (uvicorn's graceful shutdown) stops accepting, lets the requests in flight finish
within --drain-timeout-s, and the process exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import signal
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, StrictBool, StrictInt, ValidationError

from ..config import BestOfNConfig
from ..errors import BestOfNError
from ..selection import SELECTION_METHODS
from .answer import Answer, BadRequest, DeadlineExceeded, MeteredModels, render, request_config, request_keys, solve
from .batching import Batcher, Cancelled, Ticket
from .settings import ServeConfig

log = logging.getLogger("bestofn.serve")


# --- errors in the OpenAI shape --------------------------------------------------------------------------------
class APIError(Exception):
    """An error answered as ``{"error": {"message", "type", "param", "code"}}`` with its HTTP status."""

    TYPES = {400: "invalid_request_error", 401: "authentication_error", 404: "invalid_request_error",
             413: "invalid_request_error", 429: "rate_limit_error", 500: "server_error", 503: "service_unavailable",
             504: "timeout_error"}

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.TYPES.get(self.status, "invalid_request_error"),
                          "param": self.param, "code": self.code}}


def error_response(error: APIError) -> JSONResponse:
    log.warning("%d %s: %s", error.status, error.code or error.param or "error", error.message)  # one line each
    return JSONResponse(error.body(), status_code=error.status)


# --- the request ------------------------------------------------------------------------------------------------
class Message(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None

    def text(self) -> str:
        """The message's text: a string, or its text parts joined (OpenAI's content-part form)."""
        if isinstance(self.content, list):
            return "".join(str(p.get("text", "")) for p in self.content if p.get("type") == "text")
        return self.content or ""


class StreamOptions(BaseModel):
    include_usage: StrictBool = False


class ChatRequest(BaseModel):
    """A standard chat completion request plus bestofn's own top-level fields (the openai client's extra_body)."""

    model_config = ConfigDict(extra="allow")

    model: str
    messages: list[Message]
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: StrictInt | None = None
    max_completion_tokens: StrictInt | None = None
    seed: StrictInt | None = None
    stream: StrictBool = False
    stream_options: StreamOptions | None = None
    n: StrictInt = 1
    user: str | None = None  # accepted, unused
    # bestofn's own
    best_of: StrictInt | None = None
    method: str | None = None
    selection: str | None = None
    aggregation: str | None = None
    deadline_s: float | None = None


@dataclass
class Plan:
    """A checked request: its config, how to select, its prompt, and how to answer."""

    config: BestOfNConfig
    selection: str
    n: int
    prompt: str
    question: str
    stream: bool
    include_usage: bool
    deadline_s: float | None


# --- the server ------------------------------------------------------------------------------------------------
class Server:
    """The loaded models, the batcher and the worker threads behind the routes (one per process)."""

    def __init__(self, config: BestOfNConfig, settings: ServeConfig, models: Any = None):
        from ..pipeline import Models

        self.config, self.settings, self.models = config, settings, models or Models()
        self.injected = models is not None  # tests' doubles; else the real loaders (vLLM: its async engine)
        self.model_name = settings.served_model_name or config.generator
        self.batcher: Batcher | None = None
        self.separator = ""
        self.context: int | None = None  # the generator's context, in tokens (None: unknown)
        self.load_error: str | None = None
        self.load_failure: BaseException | None = None  # what stopped the models from loading
        self.on_load_failure: Any = None  # called (no arguments) when loading fails: `bestofn serve` then exits
        self.pool = ThreadPoolExecutor(settings.concurrency, thread_name_prefix="bestofn-request")
        self.in_flight = 0
        self._lock = threading.Lock()

    def load(self) -> None:
        """Load the models once (a Best-of-N server holds the generator and the PRM together)."""
        from ..backends import resolve_device

        try:
            if self.config.backend == "vllm" and not self.injected:
                from .vllm_async import AsyncVLLMBackend

                generator = AsyncVLLMBackend.from_config(self.config)
            else:
                generator = self.models.generator(self.config)
            prm = self.models.prm(self.config, resolve_device(self.config.device))
            self.separator = self.models.step_separator(self.config)
            self.context = context_length(generator)
            self.batcher = Batcher(generator, prm, self.settings.batch_window_ms / 1000)
            log.info("bestofn serve: %s ready (PRM %s, method %s, N=%d)", self.model_name, self.config.prm,
                     self.config.method, self.config.n)
        except BestOfNError as e:
            self.load_error = str(e)
            log.error("bestofn serve: the models could not be loaded: %s", e)
            raise

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
        if self.batcher is not None:
            self.batcher.close()
            close = getattr(self.batcher.generator, "close", None)
            if close is not None:
                close()

    # --- checks, in the order a request meets them ---------------------------------------------------------
    def check_auth(self, request: Request) -> None:
        key = self.settings.api_key
        if key and request.headers.get("authorization", "") != f"Bearer {key}":
            raise APIError(401, "missing or wrong API key: send the header 'Authorization: Bearer KEY' with the "
                                "server's --api-key (or $BESTOFN_API_KEY)", code="invalid_api_key")

    def check_ready(self) -> None:
        if self.batcher is None:
            why = f" ({self.load_error})" if self.load_error else "; retry once GET /health answers 200"
            raise APIError(503, f"the models are still loading{why}", code="model_loading")

    def plan(self, body: dict[str, Any]) -> Plan:
        """Check every field and build the request's config; :class:`APIError` on the first problem."""
        try:
            req = ChatRequest.model_validate(body)
        except ValidationError as e:
            first = e.errors()[0]
            param = ".".join(str(p) for p in first["loc"]) or None
            raise APIError(400, f"{param}: {first['msg']}", param=param, code="invalid_parameter") from None
        if req.model != self.model_name:
            raise APIError(404, f"the model {req.model!r} does not exist here; this server serves "
                                f"{self.model_name!r} (GET /v1/models)", param="model", code="model_not_found")
        extra = set(req.model_extra or {}) - set(request_keys())
        if extra:
            name = sorted(extra)[0]
            raise APIError(400, f"unknown parameter {name!r}; bestofn's own are best_of, method, selection, "
                                f"aggregation, deadline_s, {', '.join(request_keys())}", param=name,
                           code="unknown_parameter")
        if not req.messages or not any(m.role == "user" for m in req.messages):
            raise APIError(400, "messages must hold at least one user message (the problem)", param="messages",
                           code="invalid_parameter")
        s = self.settings
        best_of = self.config.n if req.best_of is None else req.best_of
        if not 1 <= best_of <= s.max_best_of:
            raise APIError(400, f"best_of must be an integer from 1 to {s.max_best_of} (this server's --max-best-of), "
                                f"got {best_of}", param="best_of", code="invalid_parameter")
        selection = req.selection or s.selection
        if selection not in SELECTION_METHODS:
            raise APIError(400, f"selection must be one of {', '.join(SELECTION_METHODS)}, got {selection!r}",
                           param="selection", code="invalid_parameter")
        if not 1 <= req.n <= best_of:
            raise APIError(400, f"n (choices) must be from 1 to best_of ({best_of}), got {req.n}", param="n",
                           code="invalid_parameter")
        max_tokens = req.max_completion_tokens if req.max_completion_tokens is not None else req.max_tokens
        which = "max_completion_tokens" if req.max_completion_tokens is not None else "max_tokens"
        if max_tokens is not None and not 1 <= max_tokens <= s.max_tokens_limit:
            raise APIError(400, f"{which} must be from 1 to {s.max_tokens_limit} (this server's --max-tokens-limit), "
                                f"got {max_tokens}", param=which, code="invalid_parameter")
        if req.deadline_s is not None and not req.deadline_s > 0:
            raise APIError(400, f"deadline_s must be a positive number of seconds, got {req.deadline_s}",
                           param="deadline_s", code="invalid_parameter")
        # The request's settings over the server's: checked by BestOfNConfig exactly as a run's.
        # Without a seed a request samples afresh (as OpenAI's API does); with one, it samples the same solutions
        # whatever it is batched with.
        seed = req.seed if req.seed is not None else secrets.randbits(31)
        given = {"n": best_of, "method": req.method, "aggregation": req.aggregation, "temperature": req.temperature,
                 "top_p": req.top_p, "max_new_tokens": max_tokens, "seed": seed, **(req.model_extra or {})}
        names = {"n": "best_of", "max_new_tokens": which}
        try:
            config = request_config(self.config, {k: v for k, v in given.items() if v is not None}, names)
        except BadRequest as e:
            raise APIError(400, str(e), param=e.param, code="invalid_parameter") from None
        if config.max_new_tokens > s.max_tokens_limit:  # the server's own default above the cap
            config = request_config(config, {"max_new_tokens": s.max_tokens_limit}, names)
        prompt, question = render(self.batcher.tokenizer, [{"role": "system" if m.role == "developer" else m.role,
                                                             "content": m.text()} for m in req.messages],
                                  config, self.separator)
        config = self._fit_context(config, prompt, max_tokens is not None, which, names)
        return Plan(config, selection, req.n, prompt, question, req.stream,
                    bool(req.stream_options and req.stream_options.include_usage), req.deadline_s)

    def _fit_context(self, config: BestOfNConfig, prompt: str, explicit: bool, which: str,
                     names: dict[str, str]) -> BestOfNConfig:
        """Refuse a prompt longer than the generator's context; a default max_tokens shrinks to what is left."""
        if self.context is None:
            return config
        tokens = len(self.batcher.tokenizer(prompt, add_special_tokens=False)["input_ids"])
        if tokens >= self.context:
            raise APIError(400, f"the prompt is {tokens} tokens, longer than the model's context of {self.context}; "
                                f"shorten the messages", param="messages", code="context_length_exceeded")
        left = self.context - tokens
        if config.max_new_tokens <= left:
            return config
        if explicit:
            raise APIError(400, f"the prompt ({tokens} tokens) plus {which} ({config.max_new_tokens}) exceeds the "
                                f"model's context of {self.context}; ask for at most {left}", param=which,
                           code="context_length_exceeded")
        return request_config(config, {"max_new_tokens": left}, names)

    def admit(self) -> None:
        with self._lock:
            if self.in_flight >= self.settings.concurrency + self.settings.max_queue:
                raise APIError(429, f"the server is full ({self.in_flight} requests in flight, --concurrency "
                                    f"{self.settings.concurrency} + --max-queue {self.settings.max_queue}); retry "
                                    f"later", code="queue_full")
            self.in_flight += 1

    def release(self, _: Any = None) -> None:
        with self._lock:
            self.in_flight -= 1

    # --- the work --------------------------------------------------------------------------------------------
    def start(self, plan: Plan, ticket: Ticket, request_id: str, on_call: Any = None) -> asyncio.Future:
        """Solve the request in a worker thread; the returned future holds its :class:`Answer`. The place taken
        by :meth:`admit` is given back when the work ends."""
        arrived = time.perf_counter()

        def work() -> Answer:
            queued = time.perf_counter() - arrived
            if plan.deadline_s is not None:  # the deadline counts from arrival
                ticket.deadline = time.monotonic() + plan.deadline_s - queued
            models = MeteredModels(self.batcher, ticket, on_call)
            answer = solve(plan.config, self.separator, plan.selection, plan.n, plan.prompt, plan.question, models)
            answer.timings = {"queued": queued, **answer.timings}
            return answer

        future = asyncio.get_running_loop().run_in_executor(self.pool, work)
        future.add_done_callback(self.release)
        return future


def context_length(generator: Any) -> int | None:
    """The generator's context in tokens: vLLM's max_model_len, a transformers model's positions, else None."""
    if getattr(generator, "max_model_len", None):
        return int(generator.max_model_len)
    config = getattr(getattr(generator, "model", None), "config", None)
    return getattr(config, "max_position_embeddings", None)


def outcome_error(error: BaseException) -> APIError:
    """What a request's failed work answers."""
    if isinstance(error, DeadlineExceeded):
        return APIError(504, "deadline_s passed before any solution finished; allow more time or ask for fewer "
                             "tokens", param="deadline_s", code="deadline_exceeded")
    if isinstance(error, (BadRequest, BestOfNError)):
        return APIError(400, str(error), param=getattr(error, "param", None), code="invalid_parameter")
    log.error("a request failed", exc_info=error)
    return APIError(500, f"the server failed on this request ({type(error).__name__}: {error}); see its log",
                    code="internal_error")


# --- the response ---------------------------------------------------------------------------------------------
def extras(answer: Answer, plan: Plan) -> dict[str, Any]:
    """Everything bestofn adds, under one ``bestofn`` key."""
    return {"answer": answer.answer, "method": plan.config.method, "selection": plan.selection,
            "samples_used": answer.samples_used, "prm_tokens": answer.usage.prm_tokens,
            "candidates": answer.candidates, "answer_groups": answer.answer_groups, "timings": answer.timings}


def usage(answer: Answer) -> dict[str, int]:
    u = answer.usage
    return {"prompt_tokens": u.prompt_tokens, "completion_tokens": u.completion_tokens,
            "total_tokens": u.prompt_tokens + u.completion_tokens}


def finish_reason(answer: Answer, index: int) -> str:
    return "length" if answer.finish_reasons[index] == "length" else "stop"


def completion(answer: Answer, plan: Plan, request_id: str, model: str) -> dict[str, Any]:
    choices = [{"index": k, "message": {"role": "assistant", "content": answer.candidates[i]["text"]},
                "finish_reason": finish_reason(answer, i), "logprobs": None} for k, i in enumerate(answer.choices)]
    return {"id": request_id, "object": "chat.completion", "created": int(time.time()), "model": model,
            "choices": choices, "usage": usage(answer), "bestofn": extras(answer, plan)}


def pieces(text: str) -> list[str]:
    """The chosen text as content deltas: one per line (a long line in pieces of 64 characters)."""
    out = []
    for line in text.splitlines(keepends=True):
        out.extend(line[i : i + 64] for i in range(0, len(line), 64))
    return out or [""]


async def stream_events(server: Server, request: Request, plan: Plan, ticket: Ticket, request_id: str,
                        future: asyncio.Future, events: asyncio.Queue) -> AsyncIterator[str]:
    """The SSE stream: role at once, progress while solving, the chosen text, the finish, usage, [DONE].

    ``future`` is the request's work (started by the route, so its place in the queue is freed when the work
    ends, whatever the stream does); ``events`` gets the name of each model call's stage as it finishes.
    """
    calls = {"generation": 0, "scoring": 0}
    created = int(time.time())

    def chunk(choices: list[dict[str, Any]], **more: Any) -> str:
        body = {"id": request_id, "object": "chat.completion.chunk", "created": created, "model": server.model_name,
                "choices": choices, **more}
        return f"data: {json.dumps(body)}\n\n"

    try:
        yield chunk([{"index": k, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}
                     for k in range(plan.n)])
        while not future.done():
            try:
                stage = await asyncio.wait_for(events.get(), timeout=0.1)
            except asyncio.TimeoutError:
                if await request.is_disconnected():
                    ticket.cancel()
                    log.info("%s: the client disconnected; its work was dropped", request_id)
                    return
                continue
            calls[stage] += 1
            yield chunk([{"index": 0, "delta": {}, "finish_reason": None}], bestofn={"progress": {
                "stage": stage, "generation_calls": calls["generation"], "scoring_calls": calls["scoring"]}})
        try:
            answer = future.result()
        except Cancelled:
            return
        except Exception as e:  # noqa: BLE001 - the status is sent already: the error goes in the stream
            error = outcome_error(e)
            log.warning("%d %s: %s", error.status, error.code, error.message)
            yield f"data: {json.dumps(error.body())}\n\n"
            yield "data: [DONE]\n\n"
            return
        for k, i in enumerate(answer.choices):
            for piece in pieces(answer.candidates[i]["text"]):
                yield chunk([{"index": k, "delta": {"content": piece}, "finish_reason": None}])
        yield chunk([{"index": k, "delta": {}, "finish_reason": finish_reason(answer, i)}
                     for k, i in enumerate(answer.choices)], bestofn=extras(answer, plan))
        if plan.include_usage:
            yield chunk([], usage=usage(answer))
        yield "data: [DONE]\n\n"
    finally:
        if not future.done():  # the client went away (the stream was closed): drop the work
            ticket.cancel()


# --- the app --------------------------------------------------------------------------------------------------
async def read_body(request: Request, limit: int) -> dict[str, Any]:
    """The JSON body, read at most ``limit`` bytes far (413 beyond), parsed (400 when malformed)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise APIError(413, f"the request body is {declared} bytes, more than this server's --max-body-bytes {limit}",
                       code="request_too_large")
    data = bytearray()
    async for part in request.stream():
        data.extend(part)
        if len(data) > limit:
            raise APIError(413, f"the request body is more than this server's --max-body-bytes {limit}",
                           code="request_too_large")
    try:
        body = json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise APIError(400, f"the request body is not valid JSON ({e})", code="invalid_json") from None
    if not isinstance(body, dict):
        raise APIError(400, "the request body must be a JSON object", code="invalid_json")
    return body


def create_app(server: Server, load: bool = True) -> FastAPI:
    """The routes over ``server``; ``load``: load its models in the background at startup (/health says when)."""

    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if load and server.batcher is None:
            threading.Thread(target=_load_quietly, args=(server,), name="bestofn-load", daemon=True).start()
        yield

    app = FastAPI(title="bestofn", lifespan=lifespan)
    app.state.server = server

    @app.exception_handler(APIError)
    async def api_error(request: Request, error: APIError) -> JSONResponse:
        return error_response(error)

    @app.get("/health")
    async def health() -> JSONResponse:
        if server.batcher is None:
            return JSONResponse({"status": "error" if server.load_error else "loading", "detail": server.load_error},
                                status_code=503)
        return JSONResponse({"status": "ok"})

    @app.get("/v1/models")
    async def models(request: Request) -> dict[str, Any]:
        server.check_auth(request)
        return {"object": "list", "data": [{"id": server.model_name, "object": "model", "created": 0,
                                            "owned_by": "bestofn"}]}

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Any:
        server.check_auth(request)
        server.check_ready()
        plan = server.plan(await read_body(request, server.settings.max_body_bytes))
        server.admit()
        request_id = f"chatcmpl-{uuid.uuid4().hex}"
        ticket = Ticket()
        loop, events = asyncio.get_running_loop(), asyncio.Queue()

        def on_call(stage: str) -> None:  # from a worker thread: hand the stage to the stream on the loop
            loop.call_soon_threadsafe(events.put_nowait, stage)

        try:
            future = server.start(plan, ticket, request_id, on_call if plan.stream else None)
        except BaseException:
            server.release()
            raise
        if plan.stream:
            return StreamingResponse(stream_events(server, request, plan, ticket, request_id, future, events),
                                     media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
        while not future.done():
            await asyncio.wait({future}, timeout=0.1)
            if not future.done() and await request.is_disconnected():
                ticket.cancel()
                log.info("%s: the client disconnected; its work was dropped", request_id)
                return JSONResponse({}, status_code=499)
        try:
            answer = future.result()
        except Cancelled:
            return JSONResponse({}, status_code=499)
        except Exception as e:  # noqa: BLE001
            return error_response(outcome_error(e))
        return completion(answer, plan, request_id, server.model_name)

    return app


def _load_quietly(server: Server) -> None:
    try:
        server.load()
    except Exception as e:  # noqa: BLE001 - /health reports it; the server's runner decides what follows
        if not isinstance(e, BestOfNError):
            log.exception("loading the models failed")
        server.load_failure = e
        server.load_error = server.load_error or f"{type(e).__name__}: {e}"
        if server.on_load_failure is not None:
            server.on_load_failure()


# --- running it -------------------------------------------------------------------------------------------------
def run_server(config: BestOfNConfig, settings: ServeConfig, models: Any = None) -> None:
    """Serve until SIGTERM or Ctrl-C: stop accepting, finish the requests in flight (bounded), return."""
    import uvicorn

    server = Server(config, settings, models)
    app = create_app(server)
    uv = uvicorn.Server(uvicorn.Config(app, host=settings.host, port=settings.port, log_level="info",
                                       timeout_graceful_shutdown=settings.drain_timeout_s, access_log=False))

    def stop() -> None:  # models that cannot load: the server stops, and the error is the command's
        uv.should_exit = True

    server.on_load_failure = stop
    on_main = threading.current_thread() is threading.main_thread()
    # uvicorn raises the signal it caught again once it has drained; a drained SIGTERM is a clean exit here.
    previous = signal.signal(signal.SIGTERM, lambda *_: None) if on_main else None
    try:
        uv.run()
    finally:
        if on_main:
            signal.signal(signal.SIGTERM, previous)
        server.close()
    if server.load_failure is not None:
        raise server.load_failure


@contextlib.contextmanager
def serving(config: BestOfNConfig, settings: ServeConfig, models: Any = None, timeout: float = 120,
            loaded: bool = True) -> Iterator[tuple[str, Server]]:
    """A server on ``settings.host`` in a thread of this process: ``(base URL, server)``.

    For tests and benchmarks (port 0: a free port); stopped, its models closed, when the block ends. ``loaded``:
    the models are loaded before it starts; else they load in the background, as in ``bestofn serve``.
    """
    import uvicorn

    server = Server(config, settings, models)
    if loaded:
        server.load()
    uv = uvicorn.Server(uvicorn.Config(create_app(server, load=not loaded), host=settings.host, port=settings.port,
                                       log_level="warning", access_log=False,
                                       timeout_graceful_shutdown=settings.drain_timeout_s))
    thread = threading.Thread(target=uv.run, name="bestofn-serve", daemon=True)
    thread.start()
    started = time.monotonic()
    while not uv.started:
        if not thread.is_alive() or time.monotonic() - started > timeout:
            raise RuntimeError("the server did not start")
        time.sleep(0.02)
    port = uv.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://{settings.host}:{port}", server
    finally:
        uv.should_exit = True
        thread.join(timeout=timeout)
        server.close()
