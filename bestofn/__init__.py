"""bestofn: Best-of-N test-time compute for small math models.

The package mirrors the method's steps, one module each:

- ``data``        load MATH-500, keep levels 1-3, draw a reproducible subset
- ``prompts``     the chain-of-thought prompt (one step per line, answer in ``\\boxed{}``)
- ``generation``  greedy and N sampled solutions (transformers; ``vllm_backend`` for vLLM)
- ``prm``         score every step with the Skywork process reward model
- ``grading``     extract the ``\\boxed{}`` answer and judge it with math-verify
- ``selection``   majority vote, naive and weighted Best-of-N
- ``pipeline``    the run directory: stages, artifacts, resume
- ``analysis``    accuracy vs N, PRM quality, flips (numbers only); ``report`` turns them into plots and prose
- ``sweep``       the pipeline once per temperature, sharing the greedy baseline
- ``hub``         publish a run as a Hub dataset with a dataset card
- ``cli``         the ``bestofn`` command
"""

__version__ = "0.1.0"
