"""Reports as Markdown (:class:`Page`), saved as ``report.md`` with PNGs beside it and as ``report.html``, one
self-contained page (markdown-it-py into ``templates/report.html``, plots embedded; no server, no JavaScript).

A report written into a run directory holds that run directory's lock (:func:`output_lock`), like every writer.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

from markdown_it import MarkdownIt
from matplotlib.figure import Figure

from ..io import atomic_write_bytes, atomic_write_text
from ..rundir import lock_run_dir, record_written

RUN_DIR_MARKERS = ("manifest.json", "config.yaml")  # files that every run directory holds (bestofn run or import)
DPI = 110
TEMPLATE = Path(__file__).resolve().parents[1] / "templates" / "report.html"


# --- Markdown snippets (answers and problem texts are LaTeX: shown verbatim, never interpreted) ----------------------
def _fence(text: str, fence: str) -> str:
    """``fence`` lengthened until ``text`` holds no run of backticks as long."""
    while fence in text:
        fence += "`"
    return fence


def code(text: object) -> str:
    """``text`` as an inline code span; a run of backticks inside gets a longer fence around it."""
    text = str(text).replace("\n", " ")
    fence, pad = _fence(text, "`"), " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def cell(text: object) -> str:
    """Text for a table cell: a ``|`` would end the cell, so it is escaped (GFM tables allow ``\\|``)."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def fenced(text: str, info: str = "text") -> str:
    """A fenced code block longer than any backtick run inside ``text``."""
    fence = _fence(text, "```")
    return f"{fence}{info}\n{text}\n{fence}"


def table(header: Sequence[object], rows: Sequence[Sequence[object]]) -> str:
    """A GFM table."""
    lines = ["| " + " | ".join(cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows])


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


# --- The page ---------------------------------------------------------------------------------------------------------
@dataclass
class Page:
    """A report: Markdown blocks, plus HTML-only blocks (text coloured by a reward) that carry a Markdown stand-in."""

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
        env = {"images": {name: "data:image/png;base64," + base64.b64encode(data).decode("ascii")
                          for name, data in images.items()}}
        parts = [renderer.render(f"# {self.title}", env)]
        parts += [raw if raw is not None else renderer.render(md, env) for md, raw in self.blocks]
        head, tail = TEMPLATE.read_text().split("__BODY__")
        return head.replace("__TITLE__", html.escape(self.title)) + "\n".join(parts) + tail


def markdown_renderer() -> MarkdownIt:
    """CommonMark with GFM tables and raw HTML (for ``<details>``); images take their data from ``env``."""
    md = MarkdownIt("commonmark", {"html": True}).enable("table")

    def image(self, tokens, idx, options, env):  # noqa: ANN001 - markdown-it's render-rule signature
        token = tokens[idx]
        token.attrSet("src", env.get("images", {}).get(token.attrGet("src"), token.attrGet("src")))
        return self.image(tokens, idx, options, env)

    md.add_render_rule("image", image)
    return md


# --- Writing files ----------------------------------------------------------------------------------------------------
def png_bytes(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    return buf.getvalue()


def write_page(page: Page, figures: Mapping[str, Figure], out_dir: str | Path,
               formats: Sequence[str] = ("md", "html")) -> list[Path]:
    """Write the PNGs, then ``report.md`` and/or ``report.html`` into ``out_dir``; return the written paths."""
    out_dir = Path(out_dir)
    images = {name: png_bytes(fig) for name, fig in figures.items()}
    for name, data in images.items():
        atomic_write_bytes(out_dir / name, data)
    names = list(images)
    for fmt, make in (("md", page.markdown), ("html", lambda: page.html(images))):
        if fmt in formats:
            atomic_write_text(out_dir / f"report.{fmt}", make())
            names.append(f"report.{fmt}")
    record_written(out_dir, names)  # what `--overwrite` may remove: a user's own files stay
    return [out_dir / name for name in names]


def owning_run_dir(out_dir: str | Path) -> Path | None:
    """The run directory that ``out_dir`` writes into: ``out_dir`` itself, or its parent (``RUN_DIR/report``)."""
    out_dir = Path(out_dir)
    return next((p for p in (out_dir, out_dir.parent) if any((p / m).is_file() for m in RUN_DIR_MARKERS)), None)


def output_lock(out_dir: str | Path) -> AbstractContextManager:
    """The run lock of the run directory ``out_dir`` writes into, if any (:func:`bestofn.rundir.lock_run_dir`: a
    run directory in use by another writer, or not writable, stops the report at once with one line)."""
    run_dir = owning_run_dir(out_dir)
    return nullcontext() if run_dir is None else lock_run_dir(run_dir)
