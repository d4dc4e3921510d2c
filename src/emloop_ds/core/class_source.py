"""Read the public names of a dataset class from its source code, without importing or running it.

The command line uses this to tell a mistyped command from a method before the dataset is built (building
may take long, or download). It reads the class body and, through the module's imports, its bases; anything
it cannot follow for certain (a decorated class, a metaclass, a base it cannot find, a module that sets
attributes on the class) makes it answer "unknown", and the caller then builds the dataset to find out.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import sys
import types
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.machinery import PathFinder
from pathlib import Path

__all__ = ["ClassNames", "read_class_names"]

_MAX_DEPTH = 20
_LIVE_PACKAGE = "emloop_ds"  # our own base classes are read from the live classes


@dataclass(frozen=True)
class ClassNames:
    """The public names a class defines or inherits: methods callable without arguments, and all others."""

    functions: frozenset[str]
    others: frozenset[str]

    def __contains__(self, name: object) -> bool:
        return name in self.functions or name in self.others


class _UnknownError(Exception):
    """The source does not tell for certain; internal to this module."""


def read_class_names(class_path: str, search_dirs: Sequence[Path]) -> ClassNames | None:
    """Return the public names of the class ``module.Class``, or ``None`` if its source does not tell.

    The module is looked for in ``search_dirs``, then on ``sys.path``; nothing is imported except
    emloop-ds itself (whose base classes are read live).
    """
    module_name, _, class_name = class_path.rpartition(".")
    paths = [str(folder.resolve()) for folder in search_dirs] + sys.path
    try:
        functions, others = _class_names(module_name, class_name, paths, depth=0)
    except (_UnknownError, OSError, SyntaxError, ValueError, ImportError):
        return None
    public = frozenset(name for name in functions if not name.startswith("_"))
    return ClassNames(public, frozenset(name for name in others if not name.startswith("_")) - public)


def _class_names(module: str, name: str, paths: list[str], depth: int) -> tuple[set[str], set[str]]:
    if depth > _MAX_DEPTH:
        raise _UnknownError
    if module == _LIVE_PACKAGE or module.startswith(_LIVE_PACKAGE + "."):
        live = getattr(importlib.import_module(module), name, None)
        if not isinstance(live, type):
            raise _UnknownError
        members = inspect.getmembers_static(live)
        functions = {member for member, value in members if _is_live_plain_method(value)}
        return functions, {member for member, _ in members} - functions
    source, is_package = _find_source(module, paths)
    tree = ast.parse(source.read_text(encoding="utf-8"), filename=str(source))
    package = module if is_package else module.rpartition(".")[0]
    imports = _imported_names(tree, package)
    classes = {node.name: node for node in tree.body if isinstance(node, ast.ClassDef)}
    if name not in classes:
        if name in imports:  # `from other import Data`: the class lives there
            return _class_names(*imports[name], paths, depth + 1)
        raise _UnknownError
    node = classes[name]
    if node.decorator_list or node.keywords or _is_patched(tree, name):
        raise _UnknownError
    functions, others = _body_names(node)
    for base in node.bases:
        base_module, base_name = _resolve_base(base, module, classes, imports)
        if (base_module, base_name) == ("builtins", "object"):
            continue
        base_functions, base_others = _class_names(base_module, base_name, paths, depth + 1)
        functions |= base_functions - others
        others |= base_others - functions
    return functions, others


def _find_source(module: str, paths: list[str]) -> tuple[Path, bool]:
    """Find the .py file of ``module`` on ``paths`` without importing it or its parent packages."""
    search: list[str] | None = paths
    spec = None
    parts = module.split(".")
    for index in range(len(parts)):
        if search is None:
            raise _UnknownError
        spec = PathFinder.find_spec(".".join(parts[: index + 1]), search)
        if spec is None:
            raise _UnknownError
        search = list(spec.submodule_search_locations or []) or None
    if spec is None or spec.origin is None or not spec.origin.endswith(".py"):
        raise _UnknownError
    return Path(spec.origin), spec.submodule_search_locations is not None


def _imported_names(tree: ast.Module, package: str) -> dict[str, tuple[str, str]]:
    """Map each name bound by a top-level ``from M import X`` to (M, X); ``import a.b`` binds ``a``."""
    names: dict[str, tuple[str, str]] = {}
    for node in tree.body:
        if isinstance(node, ast.ImportFrom):
            module = importlib.util.resolve_name("." * node.level + (node.module or ""), package)
            for alias in node.names:
                names[alias.asname or alias.name] = (module, alias.name)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                bound = alias.asname or alias.name.partition(".")[0]
                names[bound] = (alias.name if alias.asname else bound, "")
    return names


def _resolve_base(
    base: ast.expr, module: str, classes: dict[str, ast.ClassDef], imports: dict[str, tuple[str, str]]
) -> tuple[str, str]:
    """Return (module, class name) of a base class expression, raising ``_UnknownError`` if unsure."""
    if isinstance(base, ast.Name):
        if base.id in classes:
            return module, base.id
        if base.id in imports and imports[base.id][1]:
            return imports[base.id]
        if base.id == "object":
            return "builtins", "object"
    elif isinstance(base, ast.Attribute):
        dotted = ast.unparse(base.value)
        head = dotted.partition(".")[0]
        if head in imports:  # `import pkg.mod` or `from pkg import mod`, then `mod.Base`
            imported_module, imported_name = imports[head]
            prefix = f"{imported_module}.{imported_name}" if imported_name else imported_module
            return prefix + dotted[len(head) :], base.attr
    raise _UnknownError


def _body_names(node: ast.ClassDef) -> tuple[set[str], set[str]]:
    """Split the names a class binds into methods callable without arguments and everything else.

    Besides its body, a class binds the attributes its methods set on the instance (``self.x = ...``).
    """
    functions: set[str] = set()
    others: set[str] = set()
    for statement in node.body:
        if isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef):
            (functions if _is_plain_method(statement) else others).add(statement.name)
            others.update(_instance_attributes(statement))
        elif isinstance(statement, ast.ClassDef):
            others.add(statement.name)
        elif isinstance(statement, ast.Assign | ast.AnnAssign | ast.AugAssign):
            targets = statement.targets if isinstance(statement, ast.Assign) else [statement.target]
            others.update(n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name))
        elif isinstance(statement, ast.Import | ast.ImportFrom):
            others.update((a.asname or a.name).partition(".")[0] for a in statement.names)
        elif not isinstance(statement, ast.Expr | ast.Pass):
            raise _UnknownError  # `if`, `for`, `with`... may bind names we cannot be sure of
    if others & {"__getattr__", "__getattribute__"} or functions & {"__getattr__", "__getattribute__"}:
        raise _UnknownError  # any name may exist
    return functions - others, others


def _is_plain_method(function: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """Tell whether a method (plain, static or class method) can be called with no arguments."""
    decorators = [ast.unparse(decorator) for decorator in function.decorator_list]
    if decorators == ["staticmethod"]:
        return _ast_takes_no_arguments(function.args, skip=0)
    if decorators in ([], ["classmethod"]):
        return _ast_takes_no_arguments(function.args, skip=1)
    return False  # a property or another decorator: not known to be a method


def _instance_attributes(function: ast.FunctionDef | ast.AsyncFunctionDef) -> set[str]:
    """Return the attributes a method sets on its first argument; unknown if it sets them dynamically."""
    arguments = [*function.args.posonlyargs, *function.args.args]
    if not arguments or function.decorator_list:
        return set()
    instance = arguments[0].arg
    names = set()
    for node in ast.walk(function):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == instance:
            if isinstance(node.ctx, ast.Store | ast.Del):
                names.add(node.attr)
            elif node.attr == "__dict__":
                raise _UnknownError  # self.__dict__.update(...) binds names we cannot see
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "vars":
            raise _UnknownError
    return names


def _is_live_plain_method(member: object) -> bool:
    """Tell whether a class member (as ``getattr_static`` gives it) is a method callable with no arguments."""
    if isinstance(member, staticmethod):
        function, skip = member.__func__, 0
    elif isinstance(member, classmethod):
        function, skip = member.__func__, 1
    elif isinstance(member, types.FunctionType):
        function, skip = member, 1
    else:
        return False
    try:
        parameters = list(inspect.signature(function).parameters.values())[skip:]
    except (TypeError, ValueError):
        return False
    return all(p.default is not p.empty or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in parameters)


def _ast_takes_no_arguments(arguments: ast.arguments, skip: int) -> bool:
    """Tell whether a function in source can be called with no arguments but its first ``skip``."""
    positional = [*arguments.posonlyargs, *arguments.args][skip:]
    keyword_only_required = any(default is None for default in arguments.kw_defaults)
    return len(positional) <= len(arguments.defaults) and not keyword_only_required


def _is_patched(tree: ast.Module, class_name: str) -> bool:
    """Tell whether the module may add attributes to the class after defining it."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "setattr":
            return True
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.ctx, ast.Store | ast.Del)
            and isinstance(node.value, ast.Name)
            and node.value.id == class_name
        ):
            return True
    return False
