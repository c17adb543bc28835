"""Inventory sources on disk, taken as Ansible takes them; the only module here doing I/O.

A source is a file or a folder (every file in it, sorted, skipping hidden files,
`group_vars`, `host_vars` and backup or text extensions). A file is an executable
inventory script (its `--list` JSON, run by the caller's runner), YAML (`.yml`, `.yaml`,
`.json`, no extension; also a saved `ansible-inventory --list`), else INI. Beside each
source given on the command line, `group_vars/` and `host_vars/` are read as Ansible's
host_group_vars plugin reads them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from fleetaudit.errors import InventoryError
from fleetaudit.inventory.data import MAX_VALUE_DEPTH, GraphError, InventoryData, check_nesting
from fleetaudit.inventory.ini import IniError, looks_like_ini, parse_ini
from fleetaudit.inventory.listjson import (
    ListJsonError,
    has_host_vars,
    is_list_json,
    line_past_depth,
    load_json,
    parse_host_vars,
    parse_list_json,
)
from fleetaudit.inventory.variables import VarsDir, VarsFile
from fleetaudit.inventory.yamlsrc import (
    Mapping,
    YamlError,
    line_of,
    load_yaml,
    parse_yaml_inventory,
)

MAX_FILE_BYTES = 64 * 1024 * 1024
YAML_EXTENSIONS = ("", ".yml", ".yaml", ".json")
_IGNORED = re.compile(r"^\.|^host_vars$|^group_vars$|^vars_plugins$|"
                      r"(\.pyc|\.pyo|\.swp|\.bak|~|\.rpm|\.md|\.txt|\.rst|\.orig|\.cfg|\.retry)$")



class ScriptRun(Protocol):
    """One inventory script: its stdout for `--list` or `--host NAME`."""

    def __call__(self, *args: str) -> bytes: ...


ScriptRunner = Callable[[Path], ScriptRun]  # all of one script's runs share one time limit


def read_text(path: Path) -> str:
    """The file as text; NUL bytes and invalid UTF-8 are named by line, not byte offset."""
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise InventoryError(f"{path}: larger than {MAX_FILE_BYTES} bytes")
        raw = path.read_bytes()
    except OSError as exc:
        raise InventoryError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    nul = raw.find(b"\0")
    if nul >= 0:
        line = raw.count(b"\n", 0, nul) + 1
        raise InventoryError(f"{path}:{line}: contains a NUL byte: not a text file")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise InventoryError(f"{path}:{line}: not UTF-8 text "
                             f"(byte 0x{raw[exc.start]:02x})") from exc


def _load_yaml(path: Path, text: str) -> Any:
    document, duplicates = load_yaml(text)
    return document, [f"{path}:{second}: key {key!r} given twice (first on line {first}); "
                      "the last one is used, as Ansible does"
                      for key, first, second in duplicates]


def read_source(path: Path, data: InventoryData, run_script: ScriptRunner | None,
                *, top: bool = True) -> None:
    """Add one source (file or folder) to `data`."""
    if path.is_dir():
        try:
            entries = sorted(os.listdir(path))
        except OSError as exc:
            raise InventoryError(f"{path}: cannot list: {exc.strerror or exc}") from exc
        for entry in entries:
            if not _IGNORED.search(entry):
                read_source(path / entry, data, run_script, top=False)
        return
    if not path.exists():
        raise InventoryError(f"{path}: no such inventory file or folder")
    if not path.is_file():
        raise InventoryError(f"{path}: not a regular file")
    if os.access(path, os.X_OK):
        _read_script(path, data, run_script)
        return
    if path.suffix == ".toml":
        raise InventoryError(f"{path}: TOML inventories are not supported: use INI or YAML")
    text = read_text(path)
    lines = text.splitlines()
    yaml_problem: YamlError | None = None
    if path.suffix in YAML_EXTENSIONS and not (path.suffix == "" and looks_like_ini(lines)):
        try:
            document, duplicates = _load_yaml(path, text)
            if is_list_json(document):
                parse_list_json(document, str(path), data)
            else:
                parse_yaml_inventory(document, str(path), data)
            data.warnings.extend(duplicates)
            return
        except ListJsonError as exc:
            raise InventoryError(_where(path, exc.line) + str(exc)) from exc
        except YamlError as exc:
            if path.suffix:
                raise InventoryError(_where(path, exc.line) + str(exc)) from exc
            yaml_problem = exc
    try:
        parse_ini(lines, str(path), data)
    except IniError as exc:
        message = f"{path}:{exc.line}: {exc}"
        if yaml_problem is not None:
            message += f" (read as INI; as YAML: {yaml_problem})"
        if not top:
            data.warnings.append(f"skipped, not an inventory: {message}")
            return
        raise InventoryError(message) from exc


def _where(path: Path, line: int | None) -> str:
    return f"{path}:{line}: " if line else f"{path}: "


def _read_script(path: Path, data: InventoryData, run_script: ScriptRunner | None) -> None:
    """`SCRIPT --list`; then, as Ansible does when it gives no `_meta.hostvars`,
    `SCRIPT --host NAME` for each host it named (an empty answer: no variables)."""
    if run_script is None:
        raise InventoryError(f"{path}: is executable, so it is an inventory script, and "
                             "scripts are not run here")
    script = run_script(path)
    document = _script_json(path, script("--list"), "--list")
    try:
        named = parse_list_json(document, str(path), data)
    except ListJsonError as exc:
        raise InventoryError(f"{path}: its --list output is not inventory JSON: "
                             f"{str(exc)[:300]}") from exc
    if has_host_vars(document) or not named:
        return
    data.warnings.append(f"{path}: its --list output has no _meta.hostvars, so it was run "
                         f"with --host for each of its {len(named)} hosts, as Ansible does "
                         "(Ansible deprecates this: a script should give _meta.hostvars)")
    for name in named:
        output = script("--host", name)
        if not output.strip():
            continue
        try:
            parse_host_vars(name, _script_json(path, output, f"--host {name}"),
                            f"{path} (--host {name})", data)
        except ListJsonError as exc:
            raise InventoryError(f"{path}: its --host {name} output: {str(exc)[:300]}") from exc


def _script_json(path: Path, output: bytes, what: str) -> Any:
    try:
        return load_json(output)
    except ListJsonError as exc:
        raise InventoryError(f"{path}: its {what} output, line {exc.line}: {exc}") from exc
    except ValueError as exc:
        raise InventoryError(f"{path}: its {what} output is not JSON: "
                             f"{str(exc)[:300]}") from exc


def _vars_files(folder: Path, name: str) -> list[Path]:
    """Ansible's find_vars_files: NAME, else NAME.yml/.yaml/.json; a folder's files sorted."""
    for extension in YAML_EXTENSIONS:
        candidate = folder / (name + extension)
        if candidate.is_dir():
            return _folder_files(candidate)
        if candidate.exists():
            return [candidate]
    return []


def _folder_files(folder: Path) -> list[Path]:
    found: list[Path] = []
    for entry in sorted(os.listdir(folder)):
        if entry.startswith(".") or entry.endswith("~"):
            continue
        full = folder / entry
        extension = os.path.splitext(entry)[1]
        if full.is_dir() and not extension:
            found.extend(_folder_files(full))
        elif full.is_file() and extension in YAML_EXTENSIONS:
            found.append(full)
    return found


def _load_vars_file(path: Path, warnings: list[str]) -> VarsFile | None:
    text = read_text(path)
    if text.lstrip().startswith("$ANSIBLE_VAULT"):
        warnings.append(f"{path}: vault-encrypted, cannot be read here; its variables "
                        "are not used")
        return None
    try:
        if path.suffix == ".json":
            try:
                document = load_json(text)
                duplicates: list[str] = []
            except ListJsonError:
                raise
            except ValueError:
                document, duplicates = _load_yaml(path, text)
        else:
            document, duplicates = _load_yaml(path, text)
    except (YamlError, ListJsonError) as exc:
        raise InventoryError(_where(path, exc.line) + str(exc)) from exc
    warnings.extend(duplicates)
    if not document:
        return None
    if not isinstance(document, dict):
        raise InventoryError(f"{path}: a variables file must be a mapping, "
                             f"not a {type(document).__name__}")
    for key, value in document.items():
        try:
            check_nesting(str(key), value)
        except GraphError as exc:
            line = line_of(document, key) if isinstance(document, Mapping) else \
                line_past_depth(text.encode(), MAX_VALUE_DEPTH + 1)  # JSON: no lines kept
            raise InventoryError(_where(path, line) + str(exc)) from exc
    origins = {str(key): f"{path}:{line_of(document, key)}" if isinstance(document, Mapping)
               else str(path) for key in document}
    return VarsFile(str(path), {str(k): v for k, v in document.items()}, origins)


def read_vars_beside(source: Path, data: InventoryData) -> VarsDir:
    """group_vars/ and host_vars/ of one source given on the command line."""
    base = source if source.is_dir() else source.parent
    found = VarsDir()
    for kind, names, into in (("group_vars", list(data.groups), found.groups),
                              ("host_vars", list(data.hosts), found.hosts)):
        folder = base / kind
        if not folder.is_dir():
            if folder.exists():
                data.warnings.append(f"{folder}: not a folder, skipped")
            continue
        present = {os.path.splitext(entry)[0] if os.path.splitext(entry)[1] in YAML_EXTENSIONS
                   else entry for entry in os.listdir(folder)}
        for name in names:
            if name not in present or name.startswith("/"):
                continue
            loaded = [_load_vars_file(path, data.warnings) for path in _vars_files(folder, name)]
            files = [v for v in loaded if v is not None]
            if files:
                into[name] = files
    return found
