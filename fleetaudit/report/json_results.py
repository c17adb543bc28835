"""results.json: the durable record of a run, and the input for re-rendering a report later.

Reading is defensive because the file comes back from disk, maybe from another
machine or another fleetaudit version: anything that is not a results.json this
version understands is a ConfigError with a message a user can act on.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError
from pydantic_core import PydanticSerializationError

from fleetaudit.errors import ConfigError
from fleetaudit.models import RESULTS_SCHEMA_VERSION, AuditResults

_MAX_REPORTED_ERRORS = 5


def results_to_json(results: AuditResults) -> str:
    """Dump results as the models promise (`model_dump_json`), indented so diffs stay readable.

    A lone surrogate (bytes decoded with surrogateescape upstream) cannot be
    encoded as UTF-8; rather than lose a whole run's results to one banner, such
    results are written as ASCII JSON with \\u escapes, which reads back identically.
    """
    try:
        return results.model_dump_json(indent=2)
    except PydanticSerializationError:
        return json.dumps(results.model_dump(mode="json"), indent=2, ensure_ascii=True)


def results_from_json(text: str) -> AuditResults:
    """Parse a results.json, refusing foreign files and newer schemas by name."""
    try:
        data: Any = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"results file is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except RecursionError:
        raise ConfigError("results file is not valid JSON: nested too deeply") from None

    if not isinstance(data, dict) or "schema_version" not in data:
        raise ConfigError(
            "not a fleetaudit results file: expected a JSON object with a 'schema_version'"
        )
    version = data["schema_version"]
    if not isinstance(version, int) or isinstance(version, bool):
        raise ConfigError(
            "not a fleetaudit results file: 'schema_version' is "
            f"{type(version).__name__}, not an integer"
        )
    if version > RESULTS_SCHEMA_VERSION:
        raise ConfigError(
            f"results file has schema_version {version}, newer than this fleetaudit reads "
            f"(up to {RESULTS_SCHEMA_VERSION}); upgrade fleetaudit to read it"
        )
    if version < 1:
        raise ConfigError(f"results file has unsupported schema_version {version}")

    # Validated from the parsed object, not the text: json.loads accepts the
    # \\u escapes of lone surrogates that results_to_json may have had to write.
    try:
        return AuditResults.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"results file does not validate: {_summarize(exc)}") from None


def _summarize(exc: ValidationError) -> str:
    """Name where and what, but never echo input values: they may be huge or hostile."""
    errors = exc.errors(include_url=False, include_input=False)
    parts = [
        f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}"
        for err in errors[:_MAX_REPORTED_ERRORS]
    ]
    if len(errors) > _MAX_REPORTED_ERRORS:
        parts.append(f"and {len(errors) - _MAX_REPORTED_ERRORS} more")
    return "; ".join(parts)
