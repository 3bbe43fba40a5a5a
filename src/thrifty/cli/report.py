"""``thrifty report RUN [RUN ...] --out report.html``: runs side by side, one self-contained page.

Writes the HTML file, a markdown twin beside it (``report.md``) and the twin's PNGs in
``report_files/``. Sections appear only when some run has the data (see
``thrifty.analysis.report``).
"""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "report",
        help="HTML + markdown report of one or more runs",
        description="Learning curves, zero-shot and fine-tuning results, label efficiency and "
        "each run's ledger, model size and training FLOPs, side by side.",
    )
    p.add_argument("runs", nargs="+", metavar="RUN", help="run folders")
    p.add_argument("--out", default="report.html", help="HTML file (default: report.html)")
    p.add_argument("--title", help="page title (default: the run names)")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from thrifty.analysis.report import build_report

    written = build_report(args.runs, args.out, title=args.title)
    print(f"wrote {written['html']} and {written['markdown']} (figures in {written['files']})")
    print("sections: " + ", ".join(written["sections"]))
    return 0
