"""The reports' HTML pages: one self-contained file, tables rendered, plots embedded, links kept."""

from __future__ import annotations

import base64

from confide.experiments.html_report import render_html, write_html

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16  # the bytes are embedded as they are; validity is the browser's


def test_a_report_becomes_one_page_with_its_plot_embedded(tmp_path):
    (tmp_path / "curve.png").write_bytes(PNG)
    report = tmp_path / "report.md"
    report.write_text(
        "# DPO <vs> IPPO\n\n| algo | score |\n| --- | --- |\n| dpo | 0.30 |\n\n![curve](curve.png)\n"
    )
    page = write_html(report)
    text = page.read_text()
    assert page.name == "report.html" and text.startswith("<!DOCTYPE html>")
    assert "<title>DPO &lt;vs&gt; IPPO</title>" in text
    assert "<td>dpo</td>" in text and "<th>score</th>" in text
    assert f'src="data:image/png;base64,{base64.b64encode(PNG).decode()}"' in text
    assert "curve.png" not in text.replace('alt="curve"', "")  # no link left to a file beside it


def test_missing_remote_and_outside_images_keep_their_links(tmp_path):
    (tmp_path / "outside.png").write_bytes(PNG)
    (tmp_path / "report").mkdir()
    text = render_html("![o](../outside.png)", tmp_path / "report", "t")
    assert 'src="../outside.png"' in text  # a file outside the report's directory is not read
    text = render_html("![a](missing.png) ![b](https://example.org/x.png) ![c](../../etc.png)", tmp_path, "t")
    assert 'src="missing.png"' in text and 'src="https://example.org/x.png"' in text
    assert 'src="../../etc.png"' in text


def test_spaces_in_names_angle_brackets_and_long_names_do_not_break_the_page(tmp_path):
    (tmp_path / "final scores.png").write_bytes(PNG)
    text = render_html(
        f"logs in <run dir>/tensorboard ![f](<final scores.png>) ![x]({'x' * 300}.png)", tmp_path, "t"
    )
    assert "&lt;run dir&gt;/tensorboard" in text and "data:image/png;base64," in text
    assert f'src="{"x" * 300}.png"' in text  # too long a name for the file system: kept as a link
