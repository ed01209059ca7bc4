"""The printable 一次性告知 list of a consultation: a self-contained HTML page (no external assets)."""

from __future__ import annotations

from html import escape

from gateway.grid.schemas import ConsultationView

_COVERAGE = {"covered": "已有电子证照，无需提供", "bring": "请携带", None: ""}


def notice_html(view: ConsultationView) -> str:
    rows = "\n".join(
        f"<tr><td>{i}</td><td>{escape(m.name)}</td><td>{'必要' if m.required else '视情况'}</td>"
        f"<td>{'部门电子证照' if m.source == 'certificate' else '申请人提供'}</td>"
        f"<td>{escape(_COVERAGE.get(m.coverage, ''))}</td></tr>"
        for i, m in enumerate(view.materials, 1)
    )
    return f"""<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>一次性告知单</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse;width:100%}}
td,th{{border:1px solid #333;padding:4px 8px}}@media print{{button{{display:none}}}}</style></head>
<body><h1>一次性告知单</h1>
<p>事项：{escape(view.item.name)}（{escape(view.item.code)}）</p>
<p>网格：{escape(view.grid)}　日期：{view.created_at.date().isoformat()}</p>
<table><thead><tr><th>序号</th><th>材料名称</th><th>必要性</th><th>来源</th><th>核对</th></tr></thead>
<tbody>
{rows}
</tbody></table>
<p>请按本清单准备材料，一次到窗口办理。</p>
<button onclick="window.print()">打印</button></body></html>
"""


__all__ = ["notice_html"]
