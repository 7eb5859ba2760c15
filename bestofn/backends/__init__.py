"""Step 3: generation backends, greedy and sampled solutions from the policy model.

Contract: a backend implements :class:`GenerationBackend`: ``generate(prompts, n=, temperature=, top_p=,
max_new_tokens=, seed=)`` returns ``n`` :class:`Completion` records per prompt (text, token count, finish
reason), deterministic for the same prompts, settings and seed, whatever the batching; ``close()`` frees the
model before the PRM loads. :func:`make_backend` builds the one named by the config. Backends:
``transformers_backend`` (CPU or GPU, always available) and ``vllm_backend`` (fast, optional dependency).
"""

from .base import Completion, GenerationBackend, backend_class, make_backend, resolve_device, resolve_dtype, stop_token_ids
from .transformers_backend import TransformersBackend

__all__ = ["Completion", "GenerationBackend", "TransformersBackend", "backend_class", "make_backend", "resolve_device",
           "resolve_dtype", "stop_token_ids"]
