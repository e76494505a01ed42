"""A markdown report as one self-contained HTML page: tables rendered, plots embedded as data URIs, so
the single file opens in any browser, mails, and archives without its directory.

Rendering is markdown-it-py's CommonMark with tables (already installed: rich renders markdown with it).
Only images that are files under the report's directory are embedded; any other keeps its link.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path
from urllib.parse import unquote

from markdown_it import MarkdownIt

from confide.experiments.io import atomic_write_bytes

STYLE = """
body { font: 15px/1.5 system-ui, sans-serif; max-width: 72rem; margin: 2rem auto; padding: 0 1rem; color: #222 }
table { border-collapse: collapse; margin: 1rem 0; font-size: 13px }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.5rem; text-align: left; vertical-align: top }
th { background: #f3f3f3 }
img { max-width: 100%; display: block; margin: 1rem 0 }
code { background: #f5f5f5; padding: 0 0.2rem }
"""
MIME = {".png": "image/png", ".svg": "image/svg+xml", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}


def render_html(markdown_text: str, base: Path, title: str) -> str:
    """``markdown_text`` as a whole HTML document; relative images under ``base`` become data URIs."""
    md = MarkdownIt("commonmark", {"html": False}).enable("table")  # "<run dir>" is text, not a tag
    tokens = md.parse(markdown_text)
    for token in tokens:
        for child in token.children or []:
            if child.type == "image":
                child.attrSet("src", _embedded(str(child.attrGet("src") or ""), base))
    body = md.renderer.render(tokens, md.options, {})
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n{body}</body>\n</html>\n"
    )


def _embedded(src: str, base: Path) -> str:
    path = base / unquote(src)  # markdown-it percent-encodes the link ("a%20b.png")
    try:
        inside = path.resolve().is_relative_to(base.resolve())
        readable = inside and path.suffix.lower() in MIME and "://" not in src and path.is_file()
    except OSError:  # a name too long for the file system, a loop of links: not a file we can embed
        readable = False
    if not readable:
        return src
    mime = MIME[path.suffix.lower()]
    return f"data:{mime};base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def write_html(report: Path) -> Path:
    """Write ``report``'s HTML twin (``report.md`` → ``report.html``) beside it, atomically."""
    text = report.read_text()
    title = next((line[2:].strip() for line in text.splitlines() if line.startswith("# ")), report.stem)
    page = report.with_suffix(".html")
    atomic_write_bytes(page, render_html(text, report.parent, title).encode())
    return page
