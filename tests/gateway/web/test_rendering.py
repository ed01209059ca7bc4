"""Templates escape everything and show bidirectional controls as U+FFFD; the QR code is inline SVG with no style
attribute (the pages' CSP forbids inline styles)."""

from __future__ import annotations

import re

from gateway.web.rendering import CONTENT_SECURITY_POLICY, environment, qr_svg, visible_controls


def test_markup_and_bidi_overrides_in_a_value_render_as_text() -> None:
    template = environment().from_string("<p>{{ name }}</p><p>{{ name | text }}</p>")
    hostile = '<script>alert("x")</script>\u202etxt.exe\u2066\u200f'
    html = template.render(name=hostile)
    assert "<script>" not in html and "&lt;script&gt;" in html
    for control in ("\u202e", "\u2066", "\u200f"):
        assert control not in html
    assert html.count("\ufffd") == 6


def test_visible_controls_keeps_ordinary_text() -> None:
    assert visible_controls("张三 Zhang-San 123") == "张三 Zhang-San 123"
    assert visible_controls("a\u202db") == "a\ufffdb"


def test_qr_code_is_inline_svg_without_styles_or_scripts() -> None:
    svg = str(qr_svg("http://127.0.0.1:8000/track#n=43030220260105000001M&c=ABCD2345"))
    assert svg.startswith("<svg") and svg.rstrip().endswith("</svg>")
    assert "style=" not in svg and "<script" not in svg and "<style" not in svg
    # A different address gives a different code.
    assert svg != str(qr_svg("http://127.0.0.1:8000/track#n=43030220260105000002M&c=ABCD2345"))


def test_policy_allows_no_inline_script_and_no_framing() -> None:
    script = re.search(r"script-src ([^;]+)", CONTENT_SECURITY_POLICY)
    assert script is not None and script.group(1).strip() == "'self'"
    assert "frame-ancestors 'none'" in CONTENT_SECURITY_POLICY and "unsafe" not in CONTENT_SECURITY_POLICY


def test_templates_have_no_inline_script_or_style() -> None:
    from gateway.web.rendering import TEMPLATES

    for path in TEMPLATES.rglob("*.html"):
        text = path.read_text()
        assert "<script>" not in text and not re.search(r"<script(?![^>]*\bsrc=)", text), path
        assert " style=" not in text and "<style" not in text, path
        assert "http://" not in text and "https://" not in text, path
