"""The JSON Schema of results.json, generated from the pydantic models, and shipped.

results.schema.json beside this module is what other tools validate against; a
unit test fails when the models change and the file was not regenerated:

    .venv/bin/python -m fleetaudit.report.schema > fleetaudit/report/results.schema.json

The schema describes what fleetaudit reads back (pydantic's validation mode), so a
file that validates against it is one `fleetaudit report` accepts.
"""

from __future__ import annotations

import json
import sys
from importlib import resources
from typing import Any

from fleetaudit.models import AuditResults

SCHEMA_FILE = "results.schema.json"
DIALECT = "https://json-schema.org/draft/2020-12/schema"
REGENERATE = "python -m fleetaudit.report.schema > fleetaudit/report/results.schema.json"


def results_schema() -> dict[str, Any]:
    schema = AuditResults.model_json_schema()
    return {
        "$schema": DIALECT,
        "$comment": f"Generated from fleetaudit.models; do not edit. Regenerate: {REGENERATE}",
        **schema,
    }


def render_schema() -> str:
    """The schema as shipped: sorted keys and a final newline, so regenerating is diff-stable."""
    return json.dumps(results_schema(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def shipped_schema() -> str:
    return (resources.files("fleetaudit.report") / SCHEMA_FILE).read_text(encoding="utf-8")


def main() -> None:
    sys.stdout.write(render_schema())


if __name__ == "__main__":
    main()
