"""Reports: the numbers behind a run (``analysis``), and the plots and pages that show them.

Contract: the report reads a finished run directory and never changes it; it writes ``RUN_DIR/report/``
(Markdown, a self-contained HTML page, PNGs). ``analysis`` computes numbers only (no plotting), so it can be
tested on hand-worked cases; the rendering modules only present what ``analysis`` computed.
"""
