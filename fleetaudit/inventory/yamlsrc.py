"""YAML inventories and variable files, with the line of every key kept for messages.

libyaml's C parser is used where present (it is most of the speed on a 5,000-host
file). Mappings are built by our own constructor so that each key's line is known and
a key given twice is reported with both lines, as Ansible warns (the last one wins).
Ansible's own tags are understood: `!unsafe` is a plain string, `!vault` cannot be
decrypted here and stays a marked value.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import yaml

from fleetaudit.inventory.data import MAX_DEPTH, GraphError, InventoryData
from fleetaudit.inventory.ranges import RangeError, expand_host_pattern, split_port

_Base: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_MERGE = "tag:yaml.org,2002:merge"


class Mapping(dict[Any, Any]):
    """A YAML mapping that remembers its own line and each key's line (1-based)."""

    line: int = 0
    lines: dict[Any, int]


class YamlError(ValueError):
    def __init__(self, line: int | None, message: str) -> None:
        super().__init__(message)
        self.line = line


class _Loader(_Base):  # type: ignore[misc]
    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.duplicates: list[tuple[str, int, int]] = []


def _mapping(loader: _Loader, node: yaml.MappingNode) -> Iterator[Mapping]:
    data = Mapping()
    data.line = node.start_mark.line + 1
    data.lines = {}
    yield data
    own = sum(1 for key, _ in node.value if key.tag != _MERGE)
    loader.flatten_mapping(node)
    merged = len(node.value) - own
    for index, (key_node, value_node) in enumerate(node.value):
        key = loader.construct_object(key_node, deep=False)
        try:
            hash(key)
        except TypeError as exc:
            raise yaml.constructor.ConstructorError(
                None, None, "found an unhashable key", key_node.start_mark) from exc
        line = key_node.start_mark.line + 1
        if index >= merged and key in data.lines and data.lines[key] >= 0:
            loader.duplicates.append((str(key), data.lines[key], line))
        data[key] = loader.construct_object(value_node, deep=False)
        data.lines[key] = line if index >= merged else -1


def _timestamp(loader: _Loader, node: yaml.ScalarNode) -> str:
    return loader.construct_yaml_timestamp(node).isoformat()  # type: ignore[no-any-return]


def _unsafe(loader: _Loader, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return str(loader.construct_scalar(node))
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    return dict(loader.construct_mapping(node, deep=True))


def _vault(loader: _Loader, node: yaml.ScalarNode) -> dict[str, str]:
    return {"__ansible_vault": str(loader.construct_scalar(node))}


_Loader.add_constructor("tag:yaml.org,2002:map", _mapping)
_Loader.add_constructor("tag:yaml.org,2002:timestamp", _timestamp)
_Loader.add_constructor("!unsafe", _unsafe)
_Loader.add_constructor("!vault", _vault)
_Loader.add_constructor("!vault-encrypted", _vault)


def load_yaml(text: str) -> tuple[Any, list[tuple[str, int, int]]]:
    """The document and its duplicate keys (key, first line, second line)."""
    loader = _Loader(text)
    try:
        return loader.get_single_data(), loader.duplicates
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise YamlError(mark.line + 1 if mark else None,
                        f"invalid YAML: {exc.problem or exc.context}") from exc
    except yaml.YAMLError as exc:
        raise YamlError(None, f"invalid YAML: {exc}") from exc
    except RecursionError as exc:
        raise YamlError(None, "invalid YAML: nested too deeply") from exc
    finally:
        loader.dispose()


def line_of(mapping: Any, key: Any) -> int | None:
    if isinstance(mapping, Mapping):
        line = mapping.lines.get(key, mapping.line)
        return line if line > 0 else mapping.line
    return None


def parse_yaml_inventory(document: Any, source: str, data: InventoryData) -> None:
    """Add one YAML inventory's groups to `data`, as Ansible's yaml plugin does."""
    if not document:
        raise YamlError(None, "the file is empty")
    if not isinstance(document, dict):
        raise YamlError(None, "a YAML inventory is a mapping of groups (such as 'all:'), "
                              f"not a {type(document).__name__}")
    if document.get("plugin"):
        raise YamlError(line_of(document, "plugin"),
                        f"this is a configuration for the inventory plugin "
                        f"{document['plugin']!r}, which fleetaudit does not run: save its "
                        "output with `ansible-inventory -i FILE --list > inventory.json` "
                        "and audit that")
    walker = _Walker(source, data)
    for name, body in document.items():
        walker.group(name, body, line_of(document, name), 0)


MAX_VISITS = 1_000_000


class _Walker:
    def __init__(self, source: str, data: InventoryData) -> None:
        self.source, self.data = source, data
        self.visits = 0  # YAML aliases can make a small file name a group millions of times

    def warn(self, line: int | None, message: str) -> None:
        self.data.warnings.append(f"{self.source}:{line or '?'}: {message}")

    def group(self, name: Any, body: Any, line: int | None, depth: int) -> str:
        if depth > MAX_DEPTH:
            raise YamlError(line, f"groups nested deeper than {MAX_DEPTH} levels")
        self.visits += 1 + (len(body.get("hosts") or ()) if isinstance(body, dict) else 0)
        if self.visits > MAX_VISITS:
            raise YamlError(line, "too many group and host entries: do YAML aliases repeat "
                                  "a group many times?")
        if not isinstance(name, str):
            raise YamlError(line, f"group name {name!r} must be a string: quote it")
        if not isinstance(body, dict | type(None)):
            self.warn(line, f"skipping {name!r}: not a valid group definition")
            return name
        self.data.add_group(name)
        if body is None:
            return name
        for section in ("vars", "children", "hosts"):
            if isinstance(body.get(section), str):  # Ansible's reading: one entry
                entry = Mapping({body[section]: None})
                entry.line = line_of(body, section) or 0
                entry.lines = {body[section]: entry.line}
                body[section] = entry
            if section in body and not isinstance(body[section], dict | type(None)):
                raise YamlError(line_of(body, section),
                                f"group {name!r}: {section} must be a mapping, "
                                f"not a {type(body[section]).__name__}")
        for key, value in body.items():
            key_line = line_of(body, key)
            if not isinstance(value, dict | type(None)):
                self.warn(key_line, f"skipping key {key!r} in group {name!r}: not a mapping")
            elif value is None:
                continue
            elif key == "vars":
                for var, var_value in value.items():
                    where = f"{self.source}:{line_of(value, var)}"
                    try:
                        self.data.set_group_var(name, str(var), var_value, where)
                    except GraphError as exc:
                        raise YamlError(line_of(value, var), str(exc)) from exc
            elif key == "children":
                for child, child_body in value.items():
                    child_line = line_of(value, child)
                    child_name = self.group(child, child_body, child_line, depth + 1)
                    try:
                        self.data.add_child(name, child_name)
                    except GraphError as exc:
                        raise YamlError(child_line, str(exc)) from exc
            elif key == "hosts":
                for pattern, host_vars in value.items():
                    self.hosts(name, pattern, host_vars, line_of(value, pattern))
            else:
                self.warn(key_line, f"skipping unexpected key {key!r} in group {name!r}: "
                                    "only vars, children and hosts are valid")
        return name

    def hosts(self, group: str, pattern: Any, host_vars: Any, line: int | None) -> None:
        if not isinstance(pattern, str):
            raise YamlError(line, f"host pattern {pattern!r} must be a string: quote it")
        host_vars = host_vars or {}
        if not isinstance(host_vars, dict):
            raise YamlError(line, f"host {pattern!r}: its variables must be a mapping")
        try:
            name_pattern, port = split_port(pattern)
            names = expand_host_pattern(name_pattern)
            where = f"{self.source}:{line}"
            for host_name in names:
                host = self.data.add_host(host_name, group, port, where)
                for key, value in host_vars.items():
                    self.data.set_host_var(host, str(key), value,
                                           f"{self.source}:{line_of(host_vars, key)}")
        except (RangeError, GraphError) as exc:
            raise YamlError(line, str(exc)) from exc
