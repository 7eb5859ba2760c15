"""``bestofn run`` in a driver process whose generator stops for ever at one problem's samples (or search).

    python tests/ray_driver.py RECIPE PROBLEM_FILE

runs the real command line (:func:`bestofn.cli.main`) on RECIPE with the real models, except that sampling the
problem whose text PROBLEM_FILE holds never returns. On a Ray cluster with one worker, the chunks before it are
finished and saved and the ones after it wait behind it: a test that sees those chunks saved knows the driver
cannot get further, and kills it there (no race against a clock). The models class is defined in ``__main__``,
so Ray pickles it by value to its actors.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from bestofn import cli
from bestofn.pipeline import Models


class BlockingModels(Models):
    def __init__(self, problem: str):
        self.problem = problem

    def generator(self, config):
        backend = super().generator(config)
        real = backend.generate

        def generate(prompts, **kwargs):
            if kwargs["temperature"] > 0 and any(self.problem in p for p in prompts):
                while True:  # this chunk never finishes; the test kills the driver
                    time.sleep(1)
            return real(prompts, **kwargs)

        backend.generate = generate
        return backend


if __name__ == "__main__":
    recipe, problem_file = sys.argv[1:]
    sys.exit(cli.main(["run", "--config", recipe], models=BlockingModels(Path(problem_file).read_text())))
