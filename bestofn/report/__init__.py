"""Reports: the numbers behind a finished run (``analysis``, nothing plotted) and the plots and pages that show them.

A report reads a run directory and never changes it; it writes ``RUN_DIR/report/`` (Markdown, HTML, PNGs).
"""
