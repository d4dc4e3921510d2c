"""Refuse the parts of emloop that emloop-ds does not provide, with one ``ImportError`` that says so.

``emloop.MainLoop`` or ``from emloop import hooks`` reach a module ``__getattr__``; ``import emloop.hooks``
reaches a finder that is last on ``sys.meta_path``, so it only sees ``emloop.*`` names that no other
finder found. Both raise the same error.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from importlib.abc import MetaPathFinder
from importlib.machinery import ModuleSpec
from types import ModuleType

__all__ = ["install_finder", "not_provided_error", "refuse_other_names"]

_PACKAGE = "emloop"


def not_provided_error(name: str) -> ImportError:
    """Return the error for ``name``, a part of emloop that emloop-ds does not provide."""
    return ImportError(
        f"{name} is not provided: emloop-ds provides emloop's dataset layer only (emloop.datasets, "
        "emloop.types); for training, install emloop itself, in an environment without emloop-ds "
        "(both install the `emloop` package)",
        name=name,
    )


def refuse_other_names(module: str) -> Callable[[str], object]:
    """Return a module ``__getattr__`` for ``module`` that raises the not-provided error for public names.

    Private and special names stay an ``AttributeError``, so that probes such as
    ``getattr(emloop, "__wrapped__", None)`` keep working. A public one raises ``ImportError``, also from
    ``hasattr``, which is what ``from emloop import MainLoop`` must raise.
    """

    def refuse(name: str) -> object:
        if name.startswith("_"):
            raise AttributeError(f"module {module!r} has no attribute {name!r}", name=name)
        raise not_provided_error(f"{module}.{name}")

    return refuse


class _NotProvidedFinder(MetaPathFinder):
    """Refuse any ``emloop.<name>`` module that the finders before it did not find."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        """Raise the not-provided error for a submodule of emloop; ignore every other name."""
        if fullname.startswith(_PACKAGE + "."):
            raise not_provided_error(fullname)
        return None


def install_finder() -> None:
    """Append the finder to ``sys.meta_path``, once."""
    if not any(isinstance(finder, _NotProvidedFinder) for finder in sys.meta_path):
        sys.meta_path.append(_NotProvidedFinder())
