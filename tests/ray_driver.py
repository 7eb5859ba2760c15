"""``bestofn run`` in a driver process whose generator stops for ever at one problem's samples (or search).

    python tests/ray_driver.py RECIPE PROBLEM_FILE CHUNK_SEQUENCES

runs the real command line (:func:`bestofn.cli.main`) on RECIPE with the real models, except that sampling the
problem whose text PROBLEM_FILE holds never returns: the generator creates PROBLEM_FILE + ".reached" and waits
for ever; chunks of generation hold at most CHUNK_SEQUENCES solutions (``Models.chunk_sequences``). On a Ray cluster with one worker, every chunk left waits behind that one: a test that sees the file
knows the run cannot get further (no race against a clock), and kills the driver there. The models class is
defined in ``__main__``, so Ray pickles it by value to its actors.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from bestofn import cli
from bestofn.pipeline import Models


class BlockingModels(Models):
    def __init__(self, problem: str, reached: str, chunk_sequences: int):
        self.problem, self.reached, self.chunk_sequences = problem, reached, chunk_sequences

    def generator(self, config):
        backend = super().generator(config)
        real = backend.generate

        def generate(prompts, **kwargs):
            if kwargs["temperature"] > 0 and any(self.problem in p for p in prompts):
                Path(self.reached).touch()
                while True:  # this chunk never finishes; the test kills the driver
                    time.sleep(1)
            return real(prompts, **kwargs)

        backend.generate = generate
        return backend


if __name__ == "__main__":
    recipe, problem_file, chunk_sequences = sys.argv[1:]
    models = BlockingModels(Path(problem_file).read_text(), problem_file + ".reached", int(chunk_sequences))
    sys.exit(cli.main(["run", "--config", recipe], models=models))
