"""bestofn: test-time compute for math reasoning: sample, score every step with a PRM, select or search.

The method, one step per module (the README, docstrings and comments use these numbers):

1. ``data``        load a benchmark (MATH-500, GSM8K, AIME, ...), check every row, draw a reproducible subset
2. ``prompts``     the chain-of-thought chat prompt (steps separated as the PRM reads them, answer boxed)
3. ``backends/``   generate solutions (transformers, vLLM); ``methods/`` says which: N independent samples
                   (``best_of_n``, and greedy, the baseline), or a PRM-steered search (``beam_search``, ``dvts``)
4. ``grading``     extract the ``\\boxed{}`` answer and judge it against the gold answer with math-verify
5. ``prm/``        score every step of every solution with a process reward model
6. ``selection``   pick one answer: majority vote, naive and weighted Best-of-N

A sample's path from prompt to chosen answer: ``prompts`` (rendered in the worker) -> ``methods``
(``BestOfN.solve`` calls the backend) -> ``grading`` (on the driver) -> ``selection`` (``verdicts``), with the
PRM's step rewards (``prm/``) in between; ``pipeline`` runs those steps in chunks and writes the files.

The run, small and knowing nothing of any one method:

- ``pipeline``     the chunks of a run (planned, reused or computed by a ``Worker``, saved) and the files at the
                   end, ``results.json`` among them (each problem's verdicts from ``selection``)
- ``rundir``       the run directory: chunks sealed by their sha256, the files users read, one writer at a time
- ``executors``    where chunks run: this process, or a Ray Data actor pool on a cluster
- ``costs``        what a chunk cost (time, tokens, memory), measured where its models run
- ``io``           atomic writes, and one clear line for a file that cannot be read
- ``provenance``   what a run knows of where its solutions came from (made here, or imported)

Around them:

- ``config``       every setting, once (the CLI flags are generated from it); ``fields``: what a setting accepts
- ``report/``      reads finished runs (``loader``, the one loader): the numbers, plots and pages, ``compare``
                   (runs side by side, or prm-bench results of several PRMs)
- ``sweep``        the pipeline once per temperature, sharing the greedy baseline
- ``importer``     completions made elsewhere turned into a run directory (``bestofn import``)
- ``bench/``       ProcessBench for any PRM format: how well it finds the first wrong step (``bestofn prm-bench``)
- ``hub``          publish a run as a Hub dataset with a dataset card
- ``serve/``       ``bestofn serve``: the method behind the OpenAI chat-completions API, batched across requests
- ``seeds``, ``errors``  the one seed rule; the one-line errors users see
- ``testing/``     tiny checkpoints in the real formats and scripted solutions, for tests and offline smoke runs
- ``cli``          the ``bestofn`` command (imports the library; the library never imports it)
"""

__version__ = "0.1.0"
