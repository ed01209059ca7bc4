"""A report as CSV (UTF-8 with a BOM, so that Excel reads the Chinese names) or XLSX (one sheet per breakdown)."""

from __future__ import annotations

import csv
import io
from typing import Any, Final

import xlsxwriter

from gateway.reports.build import BREAKDOWNS
from gateway.reports.figures import COUNTS, RATES

COLUMNS: Final = (*COUNTS, *RATES)
#: Column headings (Chinese, for the people who open the file).
HEADINGS: Final = {
    "received": "收件",
    "accepted": "受理",
    "not_accepted": "不予受理",
    "completed": "办结",
    "completed_on_time": "按时办结",
    "working_days_used": "用时合计(工作日)",
    "open_at_end": "期末在办",
    "overdue_open": "期末超期",
    "corrections": "补齐补正",
    "special_procedures": "特别程序",
    "evaluations": "评价数",
    "satisfied": "满意(非常满意+满意)",
    "bad_reviews": "差评",
    "rectified_in_time": "按期整改",
    "grid_collected_evaluations": "网格代收评价",
    "grid_cases": "网格跟踪件数",
    "grid_covered": "网格按时跟踪",
    "materials_satisfied": "已齐材料",
    "materials_prefilled": "免提交材料",
    "on_time_rate": "按时办结率",
    "avg_working_days_used": "平均用时(工作日)",
    "satisfaction_rate": "满意率",
    "rectified_in_time_rate": "按期整改率",
    "grid_coverage": "网格跟踪覆盖率",
    "prefill_rate": "免提交率",
}
BOM: Final = "\ufeff"


def _cell(value: Any) -> Any:
    return "" if value is None else value


def to_csv(report: dict[str, Any]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["分组", "代码", "名称", *(HEADINGS[c] for c in COLUMNS)])
    writer.writerow(
        ["合计", report["unit"], report.get("unit_name", ""), *(_cell(report["totals"][c]) for c in COLUMNS)]
    )
    for row in report["rows"]:
        writer.writerow([BREAKDOWNS[row["breakdown"]], row["code"], row["name"], *(_cell(row[c]) for c in COLUMNS)])
    return (BOM + out.getvalue()).encode("utf-8")


def to_xlsx(report: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    book = xlsxwriter.Workbook(buffer, {"in_memory": True})
    bold = book.add_format({"bold": True})
    percent = book.add_format({"num_format": "0.0%"})
    sheets: list[tuple[str, list[dict[str, Any]]]] = [
        ("汇总", [{"code": report["unit"], "name": report.get("unit_name", "")} | report["totals"]])
    ]
    sheets += [(title, [r for r in report["rows"] if r["breakdown"] == key]) for key, title in BREAKDOWNS.items()]
    for title, rows in sheets:
        sheet = book.add_worksheet(title)
        sheet.write_row(0, 0, ["代码", "名称", *(HEADINGS[c] for c in COLUMNS)], bold)
        for i, row in enumerate(rows, start=1):
            sheet.write_string(i, 0, str(row["code"]))
            sheet.write_string(i, 1, str(row["name"]))
            for j, column in enumerate(COLUMNS, start=2):
                value = row[column]
                if value is None:
                    sheet.write_blank(i, j, None)
                elif column in RATES and column != "avg_working_days_used":
                    sheet.write_number(i, j, value, percent)
                else:
                    sheet.write_number(i, j, value)
        sheet.freeze_panes(1, 2)
    sheet0 = book.get_worksheet_by_name("汇总")
    if sheet0 is not None:
        sheet0.write_string(3, 0, f"{report['period']} {report['start']} … {report['end']}")
    book.close()
    return buffer.getvalue()


__all__ = ["BOM", "COLUMNS", "HEADINGS", "to_csv", "to_xlsx"]
