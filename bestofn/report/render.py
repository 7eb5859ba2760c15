"""Reports as Markdown, rendered to a static HTML page by a maintained Markdown library (markdown-it-py).

A report is written once, as Markdown (:class:`Page`), and saved twice: ``report.md`` with the PNG plots
beside it (GitHub and any Markdown viewer show it), and ``report.html``, one self-contained file: the same
Markdown rendered by markdown-it-py (CommonMark plus tables) into a small template, with every plot embedded
as a base64 PNG, to open in a browser or attach to a message. No server, no JavaScript.

A few views only make sense in HTML (text coloured by a reward); :meth:`Page.html_block` gives them with a
plain-Markdown stand-in for ``report.md``.

A report written into a run directory (``RUN_DIR/report``, or a comparison whose output folder is a run
directory) is written under that run directory's lock (:func:`output_lock`), like every other writer of it:
never while ``bestofn run`` rewrites the run (and may remove its stale ``report/``), nor beside another report.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from markdown_it import MarkdownIt
from matplotlib.figure import Figure

from ..io import atomic_write_bytes, atomic_write_text
from ..rundir import lock_run_dir, record_written

RUN_DIR_MARKERS = ("manifest.json", "config.yaml")  # files that every run directory holds (bestofn run or import)

DPI = 110


# --------------------------------------------------------------------------------------------------------
# Markdown snippets (answers and problem texts are LaTeX: shown verbatim, never interpreted)
# --------------------------------------------------------------------------------------------------------
def code(text: object) -> str:
    """``text`` as an inline code span; a run of backticks inside gets a longer fence around it."""
    text = str(text).replace("\n", " ")
    fence = "`"
    while fence in text:
        fence += "`"
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def cell(text: object) -> str:
    """Text for a table cell: a ``|`` would end the cell, so it is escaped (GFM tables allow ``\\|``)."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def fenced(text: str, info: str = "text") -> str:
    """A fenced code block longer than any backtick run inside ``text``."""
    fence = "```"
    while fence in text:
        fence += "`"
    return f"{fence}{info}\n{text}\n{fence}"


def table(header: Sequence[object], rows: Sequence[Sequence[object]]) -> str:
    """A GFM table."""
    lines = ["| " + " | ".join(cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def reward_digits(values: Sequence[float], least: int = 3, most: int = 10) -> int:
    """The fewest decimals (at least ``least``) that keep distinct rewards distinct and a nonzero one nonzero,
    so two rewards that rank differently never read the same ("0.000" and "0.000")."""
    distinct = {round(float(v), 12) for v in values if v is not None and math.isfinite(v)}  # sums differ in float noise
    return next((d for d in range(least, most + 1) if len({round(v, d) for v in distinct}) == len(distinct)
                 and all(round(v, d) != 0 for v in distinct if v != 0)), most)


def bullets(items: Sequence[str]) -> str:
    return "\n".join(f"- {item}" for item in items)


def details(summary: str, body_markdown: str) -> str:
    """A collapsed block (``<details>``, which GitHub and browsers both fold); the body is Markdown."""
    return f"<details><summary>{html.escape(summary, quote=False)}</summary>\n\n{body_markdown}\n\n</details>"


# --------------------------------------------------------------------------------------------------------
# The page
# --------------------------------------------------------------------------------------------------------
@dataclass
class Page:
    """A report: Markdown blocks, plus HTML-only blocks that carry a Markdown stand-in."""

    title: str
    blocks: list[tuple[str, str | None]] = field(default_factory=list)  # (markdown, html or None)

    def add(self, markdown: str) -> None:
        """Any Markdown block (headings, paragraphs, lists, tables, ``![alt](plot.png)`` images)."""
        self.blocks.append((markdown.strip("\n"), None))

    def heading(self, level: int, text: str) -> None:
        self.add(f"{'#' * level} {text}")

    def para(self, text: str) -> None:
        self.add(text)

    def image(self, filename: str, alt: str) -> None:
        """A plot written beside report.md; embedded in report.html."""
        self.add(f"![{alt}]({filename})")

    def html_block(self, html_text: str, markdown_stand_in: str) -> None:
        """A view only HTML can show (colours); report.md gets ``markdown_stand_in`` in its place."""
        self.blocks.append((markdown_stand_in.strip("\n"), html_text))

    def markdown(self) -> str:
        return f"# {self.title}\n\n" + "\n\n".join(md for md, _ in self.blocks) + "\n"

    def html(self, images: Mapping[str, bytes]) -> str:
        """The page rendered by markdown-it-py into :data:`TEMPLATE`, plots embedded as data URIs."""
        renderer = markdown_renderer()
        env = {"images": {name: "data:image/png;base64," + base64.b64encode(data).decode("ascii") for name, data in images.items()}}
        parts = [renderer.render(f"# {self.title}", env)]
        parts += [raw if raw is not None else renderer.render(md, env) for md, raw in self.blocks]
        return TEMPLATE.format(title=html.escape(self.title), css=CSS, body="\n".join(parts))


def markdown_renderer() -> MarkdownIt:
    """CommonMark with GFM tables and raw HTML (for ``<details>``); images take their data from ``env``."""
    md = MarkdownIt("commonmark", {"html": True}).enable("table")

    def image(self, tokens, idx, options, env):  # noqa: ANN001 - markdown-it's render-rule signature
        token = tokens[idx]
        token.attrSet("src", env.get("images", {}).get(token.attrGet("src"), token.attrGet("src")))
        return self.image(tokens, idx, options, env)

    md.add_render_rule("image", image)
    return md


CSS = """
body { font-family: -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; color: #222; margin: 0; background: #fafafa; }
main { max-width: 1100px; margin: 0 auto; padding: 24px 32px 64px; background: #fff; line-height: 1.45; }
h1 { border-bottom: 2px solid #2ca02c; padding-bottom: 6px; font-size: 26px; }
h2 { margin-top: 40px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
h3 { margin-top: 28px; }
table { border-collapse: collapse; margin: 12px 0; font-size: 14px; }
th, td { border: 1px solid #ddd; padding: 4px 10px; text-align: left; vertical-align: top; }
th { background: #f0f0f0; }
tbody tr:nth-child(even) { background: #fafafa; }
code { background: #f3f3f3; padding: 1px 4px; border-radius: 3px; font-size: 90%; }
img { max-width: 100%; border: 1px solid #eee; margin: 12px 0; }
details { margin: 8px 0 16px; }
summary { cursor: pointer; color: #1f77b4; }
pre { white-space: pre-wrap; background: #f6f8fa; padding: 12px; border-radius: 4px; font-size: 13px; }
pre code { background: none; padding: 0; }
.steps { border: 1px solid #ddd; border-radius: 4px; margin: 8px 0 14px; }
.steps .head { background: #f0f0f0; padding: 4px 10px; font-size: 13px; }
.steps .right { color: #1a7f37; font-weight: 600; }
.steps .wrong { color: #c62828; font-weight: 600; }
.step { display: flex; gap: 10px; padding: 3px 10px; font-size: 13px; border-top: 1px solid #eee; }
.step .r { flex: 0 0 48px; font-family: monospace; text-align: right; }
.step .t { white-space: pre-wrap; font-family: monospace; }
.step.unscored { background: #eee; color: #777; }
.step .blank { color: #888; font-style: italic; }
.steps .note { color: #c62828; }
.legend span { display: inline-block; padding: 1px 8px; margin-right: 4px; font-size: 12px; }
"""
TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title><style>{css}</style></head>
<body><main>
{body}
</main></body></html>
"""


# --------------------------------------------------------------------------------------------------------
# Writing files
# --------------------------------------------------------------------------------------------------------
def png_bytes(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    return buf.getvalue()


def write_page(page: Page, figures: Mapping[str, Figure], out_dir: str | Path,
               formats: Sequence[str] = ("md", "html")) -> list[Path]:
    """Write the PNGs, then ``report.md`` and/or ``report.html`` into ``out_dir``; return the written paths."""
    out_dir = Path(out_dir)
    images = {name: png_bytes(fig) for name, fig in figures.items()}
    written = []
    for name, data in images.items():
        atomic_write_bytes(out_dir / name, data)
        written.append(out_dir / name)
    if "md" in formats:
        atomic_write_text(out_dir / "report.md", page.markdown())
        written.append(out_dir / "report.md")
    if "html" in formats:
        atomic_write_text(out_dir / "report.html", page.html(images))
        written.append(out_dir / "report.html")
    record_written(out_dir, [p.name for p in written])  # what `--overwrite` may remove: a user's own files stay
    return written


# --------------------------------------------------------------------------------------------------------
# The run directory an output folder belongs to
# --------------------------------------------------------------------------------------------------------
def owning_run_dir(out_dir: str | Path) -> Path | None:
    """The run directory that ``out_dir`` writes into: ``out_dir`` itself, or its parent (``RUN_DIR/report``)."""
    out_dir = Path(out_dir)
    return next((p for p in (out_dir, out_dir.parent) if any((p / m).is_file() for m in RUN_DIR_MARKERS)), None)


@contextmanager
def output_lock(out_dir: str | Path) -> Iterator[None]:
    """Hold the run lock of the run directory ``out_dir`` writes into, if any, while the body runs.

    A run directory in use by another writer stops the report at once, with one line (a :class:`BestOfNError`
    from :func:`bestofn.rundir.lock_run_dir`), as does one that cannot be written.
    """
    run_dir = owning_run_dir(out_dir)
    if run_dir is None:
        yield
        return
    with lock_run_dir(run_dir):
        yield
