"""``bestofn run`` in a subprocess with a scripted generator that can stop mid-stage until a signal comes.

    python tests/signal_run.py BLOCK_AT DATASET GENERATOR PRM [bestofn run flags]

writes DATASET (three problems), then runs the real command line (:func:`bestofn.cli.main`) on it with the
scripted generator and PRM of :mod:`bestofn.testing.scripted`. With ``BLOCK_AT`` = k, the greedy generation of
problem k prints ``blocked at problem k`` on stdout and then waits for a signal, for ever: a test that has read
that line knows the run is inside the greedy stage, with the chunks of problems 0..k-1 saved, and that it cannot leave that
state before the signal lands (no race against a clock). ``BLOCK_AT`` = ``none`` runs through.
"""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path

from bestofn import cli
from bestofn.testing import make_tokenizer
from bestofn.testing.scripted import Script, ScriptedBackend, ScriptedModels, ScriptedPRM, ScriptedProblem, Solution

PROBLEMS = [(f"p{k}", f"Problem p{k}: what is {k} + 1?", str(k + 1)) for k in range(3)]


class BlockingBackend(ScriptedBackend):
    """The scripted generator, which stops in the greedy generation of one problem until a signal arrives."""

    def __init__(self, script: Script, tokenizer, block_at: int | None):
        super().__init__(script, tokenizer)
        self.block_at = block_at

    def generate(self, prompts, *, temperature, **kwargs):
        if temperature == 0 and self.block_at is not None and self._find(prompts[0])[0] == self.block_at:
            print(f"blocked at problem {self.block_at}", flush=True)
            while True:
                signal.pause()  # the signal's handler raises (KeyboardInterrupt, or the CLI's SIGTERM exception)
        return super().generate(prompts, temperature=temperature, **kwargs)


def main(argv: list[str]) -> int:
    block_at, dataset, generator, prm, *flags = argv
    Path(dataset).write_text("".join(json.dumps({"unique_id": uid, "problem": text, "answer": gold, "level": 1,
                                                 "subject": "Algebra"}) + "\n" for uid, text, gold in PROBLEMS))
    script = Script([ScriptedProblem(text, Solution(gold), [Solution(gold, (0.9,)), Solution("0", (0.1,))])
                     for _, text, gold in PROBLEMS])
    backend = BlockingBackend(script, make_tokenizer(), None if block_at == "none" else int(block_at))
    return cli.main(["run", "--dataset", dataset, "--generator", generator, "--prm", prm, "--num-problems", "3",
                     "--n", "2", "--device", "cpu", *flags],
                    models=ScriptedModels(backend, ScriptedPRM(script), chunk_sequences=1))  # one problem per chunk


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
