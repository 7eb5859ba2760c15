"""The server's own settings (``bestofn serve`` flags beside the run's), as a dataclass that generates its flags.

Like :class:`bestofn.config.BestOfNConfig`, every field's annotation and ``metadata["help"]`` make one flag
(``max_best_of`` -> ``--max-best-of``), and values are checked by :mod:`bestofn.fields`. This module imports
no web framework, so ``bestofn --help`` stays fast.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from ..errors import BestOfNError
from ..fields import check_value, field_types
from ..selection import SELECTION_METHODS

API_KEY_ENV = "BESTOFN_API_KEY"


@dataclass
class ServeConfig:
    """How ``bestofn serve`` listens, who may call it, and how much one request may ask for."""

    host: str = field(default="127.0.0.1", metadata={"help": "Address to listen on (loopback only unless you say "
                                                             "otherwise, e.g. 0.0.0.0)."})
    port: int = field(default=8000, metadata={"help": "Port to listen on (0: any free port)."})
    api_key: str | None = field(default=None, metadata={
        "help": f"Every request needs 'Authorization: Bearer KEY' (/health excepted); default: ${API_KEY_ENV}, "
                f"else none needed.", "example": "sk-local"})
    served_model_name: str | None = field(default=None, metadata={
        "help": "The model id clients send and /v1/models lists (none: the generator's id).", "example": "bestofn"})
    selection: str = field(default="weighted_bon", metadata={
        "help": "How a request's answer is picked unless it says (its `selection` field).", "choices": SELECTION_METHODS})
    max_best_of: int = field(default=64, metadata={"help": "Largest best_of (N) a request may ask for."})
    max_tokens_limit: int = field(default=4096, metadata={
        "help": "Largest max_tokens a request may ask for (per solution); the default is the run setting "
                "max_new_tokens."})
    max_body_bytes: int = field(default=1_000_000, metadata={"help": "Largest request body, in bytes (413 above)."})
    concurrency: int = field(default=16, metadata={
        "help": "Requests solved at once (their model calls are batched together)."})
    max_queue: int = field(default=64, metadata={
        "help": "Requests waiting beyond --concurrency; more get 429 (retry later)."})
    batch_window_ms: float = field(default=5.0, metadata={
        "help": "How long a model call waits for other requests' calls to batch with, in milliseconds."})
    drain_timeout_s: int = field(default=60, metadata={
        "help": "On SIGTERM: seconds the requests in flight get to finish before the server exits."})
    replicas: int = field(default=1, metadata={"help": "With --ray: server replicas behind one endpoint (Ray Serve)."})

    def __post_init__(self) -> None:
        for name, ft in field_types(type(self)).items():
            setattr(self, name, check_value(ft, getattr(self, name)))
        if self.api_key is None:
            self.api_key = os.environ.get(API_KEY_ENV) or None
        for name in ("max_best_of", "max_tokens_limit", "max_body_bytes", "concurrency", "replicas", "drain_timeout_s"):
            if getattr(self, name) < 1:
                raise BestOfNError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.max_queue < 0 or self.batch_window_ms < 0 or not 0 <= self.port < 65536:
            raise BestOfNError(f"max_queue and batch_window_ms must be >= 0 and port in 0-65535, got "
                               f"{self.max_queue}, {self.batch_window_ms} and {self.port}")
