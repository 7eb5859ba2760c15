"""Step 3: generation backends, greedy and sampled solutions from the policy model.

Contract: a backend implements :class:`GenerationBackend`: ``generate(prompts, n=, temperature=, top_p=,
max_new_tokens=, seed=, seeds=, first=)`` returns ``n`` :class:`Completion` records per prompt (text, token
count, finish reason): samples ``first..first+n-1`` of each prompt, each from its own seed (the prompt's seed
and the sample's index), whatever the batching; ``close()`` frees the model before the PRM loads. :func:`make_backend` builds the one named by the config. Backends:
``transformers_backend`` (CPU or GPU, always available) and ``vllm_backend`` (fast, optional dependency).
"""

from ..config import BestOfNConfig
from .base import Completion, GenerationBackend, resolve_device, resolve_dtype, stop_token_ids
from .transformers_backend import TransformersBackend

__all__ = ["Completion", "GenerationBackend", "TransformersBackend", "backend_class", "make_backend", "resolve_device",
           "resolve_dtype", "stop_token_ids"]


def backend_class(config: BestOfNConfig) -> type[GenerationBackend]:
    """The class of the backend named by ``config.backend`` (nothing is loaded)."""
    if config.backend == "vllm":
        from .vllm_backend import VLLMBackend  # vllm itself is imported only when the engine starts

        return VLLMBackend
    return TransformersBackend


def make_backend(config: BestOfNConfig) -> GenerationBackend:
    """The backend named by ``config.backend``, with the generator loaded."""
    return backend_class(config).from_config(config)
