"""Benchmarks of the method's parts on their own: ``processbench`` asks how well each PRM finds the first wrong
step (``bestofn prm-bench``, ProcessBench of Zheng et al. 2025)."""
