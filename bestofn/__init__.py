"""bestofn: test-time compute for math reasoning: sample, score every step with a PRM, select or search.

The method, one step per module (the README, docstrings and comments use these numbers):

1. ``data``        load a benchmark (MATH-500, GSM8K, AIME, ...), keep levels, draw a reproducible subset
2. ``prompts``     the chain-of-thought chat prompt (steps separated as the PRM reads them, answer boxed)
3. ``backends/``   generate: one greedy solution (the baseline) and N sampled ones (transformers, vLLM)
4. ``grading``     extract the ``\\boxed{}`` answer and judge it against the gold answer with math-verify
5. ``prm/``        score every step of every solution with a process reward model
6. ``selection``   pick one answer: majority vote, naive and weighted Best-of-N

Search methods (the PRM steers generation step by step instead of judging finished solutions):

- ``methods/``     beam search and DVTS, batched across problems, selected with step 6's rules

Around the method:

- ``config``       every setting, once (the CLI flags are generated from it)
- ``fields``       what a setting accepts, read from its annotation (YAML values and flag text alike)
- ``io``           atomic writes and the journals a killed stage resumes from
- ``rundir``       the run directory: manifest, verified artifacts, one writer, the one loader of a finished run
- ``pipeline``     the stages, one after the other, in a run directory that survives kills and reruns
- ``costs``        time, tokens and memory of every stage (``timings.json``)
- ``executors``    where a stage's chunks run: this process, or a Ray Data actor pool on a cluster
- ``report/``      the numbers behind a run and the plots and pages that show them
- ``sweep``        the pipeline once per temperature, sharing the greedy baseline
- ``importer``     completions made elsewhere turned into a run directory (``bestofn import``)
- ``bench/``       ProcessBench for any PRM format: how well it finds the first wrong step (``bestofn prm-bench``)
- ``hub``          publish a run as a Hub dataset with a dataset card
- ``rows``        rows read with their line numbers, and the field checks every problem and solution row passes
- ``seeds``, ``errors``  the one seed rule; the one-line errors users see
- ``testing/``     tiny checkpoints in the real formats and scripted solutions, for tests and offline smoke runs
- ``cli``          the ``bestofn`` command (imports the library; the library never imports it)
"""

__version__ = "0.1.0"
