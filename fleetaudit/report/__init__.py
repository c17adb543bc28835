"""Reports: pure rendering of AuditResults into results.json and a static HTML page.

Only `write_report` touches the filesystem; everything else is models in, text out.
"""

from fleetaudit.report.html import render_html
from fleetaudit.report.json_results import results_from_json, results_to_json
from fleetaudit.report.write import ReportPaths, write_report

__all__ = ["ReportPaths", "render_html", "results_from_json", "results_to_json", "write_report"]
