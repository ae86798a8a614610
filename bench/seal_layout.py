"""The sealing names (``SealKey``, ``StatementSealer``, ``seal_statement``,
``identities``...) as one namespace, for benches that run older checkouts
too: since branch split2 they live in the parts of ``lrs.privacy``
(data_key, sealed_text, statement_agents, seal, statement_sealer, opening),
before it all in ``lrs/privacy/seal.py``."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

# The parts, each after those it imports.
PARTS = ("data_key", "sealed_text", "statement_agents", "seal", "statement_sealer", "opening")


def _namespace(modules: list[ModuleType]) -> SimpleNamespace:
    names: dict[str, Any] = {}
    for module in modules:
        names.update({k: v for k, v in vars(module).items() if not k.startswith("__")})
    return SimpleNamespace(**names)


def seal_names() -> Any:
    """The names of the ``lrs`` first on ``sys.path``, in either layout."""
    from lrs.privacy import seal

    try:
        from lrs.privacy import data_key, opening, sealed_text, statement_agents, statement_sealer
    except ImportError:  # one module (before branch split2)
        return seal
    return _namespace([data_key, sealed_text, statement_agents, seal, statement_sealer, opening])


def load_seal(name: str, tree: Path) -> Any:
    """``tree``'s sealing as modules of their own (``seal_<name>`` and its
    parts), beside another checkout's in one process.  The parts import one
    another as ``lrs.privacy.<part>``: each is put under that name while the
    next loads, then the names are given back."""
    privacy = tree / "lrs" / "privacy"
    parts = [p for p in PARTS if (privacy / f"{p}.py").exists()]
    if parts == ["seal"]:  # one module (before branch split2)
        parts = []
    if not parts:
        spec = importlib.util.spec_from_file_location(f"seal_{name}", privacy / "seal.py")
        module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
        spec.loader.exec_module(module)  # type: ignore[union-attr]
        return module
    saved = {p: sys.modules.get(f"lrs.privacy.{p}") for p in parts}
    loaded = []
    try:
        for part in parts:
            spec = importlib.util.spec_from_file_location(f"lrs.privacy.{part}", privacy / f"{part}.py")
            module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
            sys.modules[f"lrs.privacy.{part}"] = module
            spec.loader.exec_module(module)  # type: ignore[union-attr]
            loaded.append(module)
    finally:
        for part, module in saved.items():
            if module is None:
                sys.modules.pop(f"lrs.privacy.{part}", None)
            else:
                sys.modules[f"lrs.privacy.{part}"] = module
    return _namespace(loaded)
