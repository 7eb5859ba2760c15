"""The transformers side of cancellation: a stopping criterion checked between decoding steps.

transformers calls every stopping criterion after each decoding step with the batch's token ids and stops the
rows it marks done. :class:`StopStopped` marks the rows whose request is cancelled (its client went away) or
past its deadline, so their work ends at the next step instead of at ``max_new_tokens``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from transformers import StoppingCriteria


class StopStopped(StoppingCriteria):
    """Rows of a merged call, one ticket per row (prompt-major, ``n`` copies each, as the backend lays them out).

    A call that holds one request's work may be split by the backend into several batches: then every row
    belongs to that one request. A merged call fits one batch (the batcher sees to it); should the backend
    still split it, rows stop only once every request of the call is stopped.
    """

    def __init__(self, owners: Sequence[Any], stats: Any, call: Any):
        # owners: the batcher's Tickets (``stopped()``), stats: its Stats (counts), call: its Call (the steps done,
        # which tell the lane how long the call still runs); not imported, since the batcher imports this module
        self.owners, self.stats, self.call = owners, stats, call
        call.done = 0
        self.single = len({id(t) for t in owners}) == 1
        self._stopped: set[int] = set()

    def __call__(self, input_ids: torch.Tensor, scores: Any, **kwargs: Any) -> torch.Tensor:
        self.stats.decode_steps += 1
        self.call.done += 1
        rows = input_ids.shape[0]
        if rows == len(self.owners):
            done = [t.stopped() for t in self.owners]
        else:
            stop_all = self.owners[0].stopped() if self.single else all(t.stopped() for t in self.owners)
            done = [stop_all] * rows
        for row, flag in enumerate(done):
            if flag and row not in self._stopped:
                self._stopped.add(row)
                self.stats.stopped_rows += 1
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)
