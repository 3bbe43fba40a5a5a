"""Render report sections twice: one self-contained HTML file (inline CSS, PNGs as base64 data
URIs, nothing fetched from anywhere) and a markdown twin whose PNGs sit in a sibling folder.
Both are written atomically, the PNG folder first, so a reader never sees a page whose
pictures are missing."""

from __future__ import annotations

import base64
import html
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from thrifty.atomic import replace_folder, write_text_atomic
from thrifty.errors import UserError

CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #222;
       max-width: 1100px; margin: 2em auto; padding: 0 1em; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ddd; padding-bottom: .2em; }
table { border-collapse: collapse; margin: .8em 0; font-size: 13px; }
th, td { border: 1px solid #ddd; padding: .25em .6em; text-align: left; vertical-align: top; }
th { background: #f4f4f4; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
img { max-width: 100%; height: auto; display: block; margin: .8em 0; }
.meta, .note { color: #666; } nav a { margin-right: 1em; } summary { cursor: pointer; }
"""
DASH = "—"
CORRELATIONS = ("spearman", "pearson", "correlation", "rho")
_NUMBER = re.compile(r"^[-+−]?[\d.,]+(e[-+]?\d+)?%?( ± [\d.,]+)?( \(.*\))?$")


def fmt_score(value: float | None, metric: str | None = None) -> str:
    """Accuracies (and F1, MCC, as BabyLM reports them) ×100; correlations as they are."""
    if value is None:
        return DASH
    return f"{value:.3f}" if (metric or "").lower() in CORRELATIONS else f"{100 * value:.1f}"


@dataclass
class Table:
    headers: list[str]
    rows: list[list[str]]
    collapsed: str | None = None  # a summary line: shown folded (HTML <details>)


@dataclass
class Image:
    name: str  # file stem in the markdown twin's folder
    png: bytes
    alt: str


@dataclass
class Section:
    title: str
    blocks: list[str | Table | Image] = field(default_factory=list)  # str: a paragraph

    @property
    def anchor(self) -> str:
        return re.sub(r"[^a-z0-9]+", "-", self.title.lower()).strip("-")


def _html_table(t: Table) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in t.headers)
    body = []
    for row in t.rows:
        cells = []
        for i, cell in enumerate(row):
            cls = ' class="num"' if i and _NUMBER.match(cell) else ""
            cells.append(f"<td{cls}>{html.escape(cell)}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    table = f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
    if t.collapsed:
        return f"<details><summary>{html.escape(t.collapsed)}</summary>{table}</details>"
    return table


def render_html(title: str, meta: str, sections: list[Section]) -> str:
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f'<p class="meta">{html.escape(meta)}</p>',
        "<nav>"
        + "".join(f'<a href="#{s.anchor}">{html.escape(s.title)}</a>' for s in sections)
        + "</nav>",
    ]
    for s in sections:
        parts.append(f'<section id="{s.anchor}"><h2>{html.escape(s.title)}</h2>')
        for block in s.blocks:
            if isinstance(block, Table):
                parts.append(_html_table(block))
            elif isinstance(block, Image):
                data = base64.b64encode(block.png).decode("ascii")
                alt = html.escape(block.alt, quote=True)
                parts.append(f'<img src="data:image/png;base64,{data}" alt="{alt}">')
            else:
                parts.append(f"<p>{html.escape(block)}</p>")
        parts.append("</section>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _md_cell(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _md_table(t: Table) -> str:
    numeric = [
        i > 0 and all(_NUMBER.match(row[i]) for row in t.rows) for i in range(len(t.headers))
    ]
    lines = [
        "| " + " | ".join(_md_cell(h) for h in t.headers) + " |",
        "|" + "|".join("---:" if n else "---" for n in numeric) + "|",
    ]
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in t.rows]
    table = "\n".join(lines)
    if t.collapsed:
        return f"<details><summary>{html.escape(t.collapsed)}</summary>\n\n{table}\n\n</details>"
    return table


def render_markdown(title: str, meta: str, sections: list[Section], files: str) -> str:
    parts = [f"# {title}", f"_{meta}_"]
    for s in sections:
        parts.append(f"## {s.title}")
        for block in s.blocks:
            if isinstance(block, Table):
                parts.append(_md_table(block))
            elif isinstance(block, Image):
                alt = block.alt.replace("]", ")").replace("[", "(")
                parts.append(f"![{alt}]({files}/{block.name}.png)")
            else:
                parts.append(block)
    return "\n\n".join(parts) + "\n"


def write_report(title: str, meta: str, sections: list[Section], out: Path) -> dict[str, Path]:
    """Write ``out`` (HTML), ``out`` with suffix .md, and the PNG folder ``<stem>_files``."""
    out = Path(out)
    if out.suffix.lower() == ".md":
        raise UserError(
            f"--out names the HTML file ({out}); the markdown twin is written beside it"
        )
    if out.exists() and out.is_dir():
        raise UserError(f"{out} is a folder; --out names the HTML file to write")
    out.parent.mkdir(parents=True, exist_ok=True)
    markdown, files = out.with_suffix(".md"), out.with_name(f"{out.stem}_files")
    images = [b for s in sections for b in s.blocks if isinstance(b, Image)]
    names = [i.name for i in images]
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate figure names in a report: {names}")
    tmp = Path(tempfile.mkdtemp(prefix=f".{files.name}.", suffix=".tmp", dir=out.parent))
    try:
        for image in images:
            (tmp / f"{image.name}.png").write_bytes(image.png)
        tmp.chmod(0o755)
        replace_folder(tmp, files)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    write_text_atomic(markdown, render_markdown(title, meta, sections, files.name))
    write_text_atomic(out, render_html(title, meta, sections))
    return {"html": out, "markdown": markdown, "files": files}
