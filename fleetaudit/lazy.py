"""Package attributes loaded on first use (PEP 562), so that importing a package for its
light names (an enum, a constant) does not load its heavy modules (nmap, asyncssh,
jinja2): the command line's `--help` imports such packages and must stay fast."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_attributes"]


def lazy_attributes(package: str, modules: Mapping[str, str]) -> Callable[[str], Any]:
    """A module `__getattr__` giving each name of `modules` (name -> module) from its module."""

    def __getattr__(name: str) -> Any:
        module = modules.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(module), name)

    return __getattr__
