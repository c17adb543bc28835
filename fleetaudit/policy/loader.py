"""Policy files -> `Policy`; every mistake is a PolicyError naming the file, line and field.

The YAML is composed to nodes first and constructed from them, in one parse: the nodes
keep their line marks, so a pydantic error's `loc` (a path of keys and indexes) is walked
down the node tree to the line the user has to fix.
"""

from __future__ import annotations

import functools
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from fleetaudit.errors import PolicyError
from fleetaudit.policy.schema import Policy, PolicyDocument

MAX_POLICY_BYTES = 4 * 1024 * 1024
MAX_NODES = 200_000  # after expanding aliases: a few anchors must not become a billion nodes
MAX_ERRORS_SHOWN = 20
BASELINE_SOURCE = "built-in"


def load_policy(path: str | Path) -> Policy:
    """Read and validate a policy file."""
    path = Path(path)
    try:
        if path.stat().st_size > MAX_POLICY_BYTES:
            raise PolicyError(f"{path}: larger than {MAX_POLICY_BYTES} bytes")
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(f"{path}: cannot read policy: {exc}") from exc
    return parse_policy(text, source=str(path))


@functools.cache
def baseline_policy() -> Policy:
    """The policy shipped as package data, used when the user gives none."""
    text = resources.files("fleetaudit").joinpath("policies", "baseline.yml").read_text("utf-8")
    return parse_policy(text, source=BASELINE_SOURCE)


def parse_policy(text: str, *, source: str) -> Policy:
    """Validate policy text; `source` is what error messages and the report call it."""
    root, data = _compose(text, source)
    if root is None:
        raise PolicyError(f"{source}: the policy is empty (it needs at least 'version: 1')")
    if isinstance(data, dict):
        # Top-level x-* keys are free for YAML anchors to live in, as in docker compose.
        data = {k: v for k, v in data.items() if not (isinstance(k, str) and k.startswith("x-"))}
    try:
        document = PolicyDocument.model_validate(data)
    except ValidationError as exc:
        located = sorted((*_locate(root, error["loc"]), str(error["msg"]))
                         for error in exc.errors())
        problems = [f"{source}:{line}: {field or '(top level)'}: "
                    + message.removeprefix("Value error, ")
                    for line, field, message in located[:MAX_ERRORS_SHOWN]]
        if len(located) > MAX_ERRORS_SHOWN:
            problems.append(f"... and {len(located) - MAX_ERRORS_SHOWN} more")
        raise PolicyError("\n".join(problems)) from exc
    return Policy(source=source, document=document)


class _Loader(yaml.SafeLoader):
    """SafeLoader that hands an impossible date (2026-13-01) on as text, for pydantic to
    reject with its field name, instead of raising a bare ValueError."""

    def construct_yaml_timestamp(self, node: yaml.ScalarNode) -> Any:
        try:
            return super().construct_yaml_timestamp(node)
        except ValueError:
            return self.construct_scalar(node)


_Loader.add_constructor("tag:yaml.org,2002:timestamp", _Loader.construct_yaml_timestamp)


def _compose(text: str, source: str) -> tuple[yaml.Node | None, Any]:
    loader = _Loader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return None, None
        _check_nodes(root, source)
        return root, loader.construct_document(root)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{mark.line + 1}:" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise PolicyError(f"{source}:{where} invalid YAML: {problem}") from exc
    finally:
        loader.dispose()


def _check_nodes(root: yaml.Node, source: str) -> None:
    """Refuse duplicate keys (YAML keeps the last silently) and alias bombs."""
    sizes: dict[int, int] = {}

    def size(node: yaml.Node, path: str, depth: int) -> int:
        if id(node) in sizes:
            return sizes[id(node)]
        if depth > 100:
            raise PolicyError(f"{source}:{node.start_mark.line + 1}: nested too deeply "
                              "(a recursive alias?)")
        total = 1
        if isinstance(node, yaml.MappingNode):
            seen: set[str] = set()
            for key, value in node.value:
                name = _join(path, key.value if isinstance(key, yaml.ScalarNode) else "?")
                if isinstance(key, yaml.ScalarNode) and key.tag != "tag:yaml.org,2002:merge":
                    if key.value in seen:
                        raise PolicyError(f"{source}:{key.start_mark.line + 1}: {name}: "
                                          "duplicate key")
                    seen.add(key.value)
                total += size(key, name, depth + 1) + size(value, name, depth + 1)
        elif isinstance(node, yaml.SequenceNode):
            total += sum(size(item, f"{path}[{i}]", depth + 1)
                         for i, item in enumerate(node.value))
        if total > MAX_NODES:
            raise PolicyError(f"{source}: more than {MAX_NODES} values once aliases expand")
        sizes[id(node)] = total
        return total

    size(root, "", 0)


def _join(path: str, key: object) -> str:
    return f"{path}.{key}" if path else str(key)


def _locate(root: yaml.Node, loc: tuple[int | str, ...]) -> tuple[int, str]:
    """The line of the deepest node `loc` reaches, and `loc` as a dotted field path.

    Parts not in the file (a missing field's name, pydantic's "[key]") name the field but
    leave the line at the nearest enclosing node that exists.
    """
    node, line = root, root.start_mark.line + 1
    field = ""
    for part in loc:
        if part == "[key]":
            continue
        in_list = isinstance(node, yaml.SequenceNode) and isinstance(part, int)
        field = f"{field}[{part}]" if in_list else _join(field, part)
        child = _child(node, part)
        if child is not None:
            node, line = child
    return line, field


def _child(node: yaml.Node, part: int | str) -> tuple[yaml.Node, int] | None:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode) and key.value == str(part):
                return value, key.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and (
            0 <= part < len(node.value)):
        item = node.value[part]
        return item, item.start_mark.line + 1
    return None
