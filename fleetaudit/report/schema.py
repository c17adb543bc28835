"""The JSON Schema of results.json, generated from the pydantic models, and shipped.

results.schema.json beside this module is what other tools validate against; a
unit test fails when the models change and the file was not regenerated:

    .venv/bin/python -m fleetaudit.report.schema > fleetaudit/report/results.schema.json

The schema describes what fleetaudit reads back (pydantic's validation mode), so a
file that validates against it is one `fleetaudit report` accepts; plus each host's
derived `audit_status` and `risk` (readOnly: written, then recomputed on reading).
"""

from __future__ import annotations

import json
import sys
from importlib import resources
from typing import Any

from fleetaudit.models import AuditResults
from fleetaudit.report.facts import AuditStatus, Risk

SCHEMA_FILE = "results.schema.json"
DIALECT = "https://json-schema.org/draft/2020-12/schema"
REGENERATE = "python -m fleetaudit.report.schema > fleetaudit/report/results.schema.json"


# What results_to_json adds to each host; results_from_json drops it before validating.
DERIVED_HOST_PROPERTIES: dict[str, dict[str, Any]] = {
    "audit_status": {
        "title": "Audit Status",
        "description": "How much of the host was seen: complete (status ok), unreachable "
        "(nothing read on it) or partial. Derived from status; ignored on reading.",
        "enum": [a.value for a in AuditStatus],
        "type": "string",
        "readOnly": True,
    },
    "risk": {
        "title": "Risk",
        "description": "The host's worst active finding (its worst problem verdict when no "
        "policy judged the run), or none. Derived; ignored on reading.",
        "enum": [r.value for r in Risk],
        "type": "string",
        "readOnly": True,
    },
}


def results_schema() -> dict[str, Any]:
    schema = AuditResults.model_json_schema()
    schema["$defs"]["HostResult"]["properties"].update(DERIVED_HOST_PROPERTIES)
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
