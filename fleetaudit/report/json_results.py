"""results.json: the durable record of a run, and the input for re-rendering a report later.

Reading is defensive because the file comes back from disk, maybe from another
machine or another fleetaudit version: anything that is not a results.json this
version understands is a ConfigError with a message a user can act on.

Each host also carries `audit_status` and `risk` (fleetaudit.report.facts), written
beside its raw `status` so a reader of the JSON sees what the other formats show.
They are derived: reading drops them and recomputes, so a file without them (an
older run) or with stale ones reads the same.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from typing import Any

from pydantic import ValidationError
from pydantic_core import PydanticSerializationError

from fleetaudit.errors import ConfigError
from fleetaudit.models import RESULTS_SCHEMA_VERSION, AuditResults, HostResult
from fleetaudit.report.facts import HostRating, rate_hosts

_MAX_REPORTED_ERRORS = 5
# Per-host values computed from the rest of the host (and the run), never read back.
DERIVED_HOST_FIELDS = ("audit_status", "risk")


def results_to_json(results: AuditResults) -> str:
    """Dump results as the models promise, plus each host's derived audit status and risk,
    indented so diffs stay readable.

    A lone surrogate (bytes decoded with surrogateescape upstream) cannot be
    encoded as UTF-8; rather than lose a whole run's results to one banner, such
    results are written as ASCII JSON with \\u escapes, which reads back identically.
    """
    text = "".join(results_json_chunks(results))
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "".join(results_json_chunks(results, ensure_ascii=True))
    return text


def results_json_chunks(results: AuditResults, *, ensure_ascii: bool = False) -> Iterator[str]:
    """`results_to_json`'s text in pieces, one host at a time, for writing as it comes.

    The whole run as one `model_dump` tree and one string was most of a 5,000-host run's
    memory (and its garbage collector's time); host by host, the same text costs one
    host's tree at a time. No fallback here: `ensure_ascii` is the caller's choice.
    """
    marker = f"@@fa-hosts-{secrets.token_hex(8)}"
    head: dict[str, Any] = results.model_copy(update={"hosts": []}).model_dump(mode="json")
    head["hosts"] = marker  # the hosts' place among the run's fields, kept in order
    before, after = json.dumps(head, indent=2, ensure_ascii=ensure_ascii).split(
        f'"hosts": "{marker}"', 1)
    yield before + '"hosts": '
    if not results.hosts:
        yield "[]"
    for i, (rating, host) in enumerate(zip(rate_hosts(results), results.hosts, strict=True)):
        # As json.dumps(indent=2) nests it: each host two levels in (JSON strings hold
        # no raw newline, so every newline here is the layout's).
        text = _host_json(host, rating, ensure_ascii).replace("\n", "\n    ")
        yield ("[\n    " if i == 0 else ",\n    ") + text
    if results.hosts:
        yield "\n  ]"
    yield after


def _host_json(host: HostResult, rating: HostRating, ensure_ascii: bool) -> str:
    """One host as json.dumps(indent=2) words it, with its derived fields.

    pydantic's own serializer writes the same text (tests compare them) eight times
    faster than json.dumps' indenting encoder, which is pure Python: the dump of a
    5,000-host run went from about 7 s to 1. Where it cannot (ASCII asked for, a lone
    surrogate), json.dumps of the host's dump.
    """
    if not ensure_ascii:
        try:
            text = host.model_dump_json(indent=2)
        except PydanticSerializationError:
            pass  # a lone surrogate: json.dumps keeps it, for the caller's ASCII fallback
        else:
            at = text.find('\n  "status": ')
            end = text.find("\n", at + 1)
            if at >= 0 and text[end - 1] == ",":
                derived = (f'  "audit_status": {json.dumps(rating.audit.value)},\n'
                           f'  "risk": {json.dumps(rating.risk.value)},')
                return f"{text[:end + 1]}{derived}{text[end:]}"
    data = _with_derived(host.model_dump(mode="json"), rating)
    return json.dumps(data, indent=2, ensure_ascii=ensure_ascii)


def _with_derived(host: dict[str, Any], rating: HostRating) -> dict[str, Any]:
    """The host's fields with its audit status and risk written right after its status."""
    items = list(host.items())
    at = next((i + 1 for i, (k, _) in enumerate(items) if k == "status"), len(items))
    derived = [("audit_status", rating.audit.value), ("risk", rating.risk.value)]
    return dict([*items[:at], *derived, *items[at:]])


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

    hosts = data.get("hosts")
    if isinstance(hosts, list):
        for host in hosts:
            if isinstance(host, dict):
                for key in DERIVED_HOST_FIELDS:
                    host.pop(key, None)
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
