"""The floors in .ci/floors.txt are exactly the lower bounds that pyproject.toml declares.

`.ci/run` installs the floors into a second virtual environment and runs this suite there, so a lower bound
can only be declared if the tests pass with it. The test, dev and docs extras are tools, not runtime
dependencies: they have no floors.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
NOT_RUNTIME_EXTRAS = {"test", "dev", "docs"}
_REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*([^;]*)")


def _normalize_name(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _normalize_version(version: str) -> str:
    parts = version.strip().split(".")
    while len(parts) > 1 and parts[-1] == "0":
        parts.pop()
    return ".".join(parts)


def runtime_requirements() -> list[str]:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    extras = project.get("optional-dependencies", {})
    return [
        *project["dependencies"],
        *(req for extra, reqs in extras.items() if extra not in NOT_RUNTIME_EXTRAS for req in reqs),
    ]


def declared_floors() -> dict[str, str]:
    floors = {}
    for requirement in runtime_requirements():
        match = _REQUIREMENT.match(requirement)
        assert match is not None, requirement
        name, specifier = match.groups()
        floor = re.search(r">=\s*([^,\s]+)", specifier)
        assert floor is not None, f"runtime dependency {requirement!r} declares no >= lower bound"
        floors[_normalize_name(name)] = _normalize_version(floor.group(1))
    return floors


def pinned_floors() -> dict[str, str]:
    pins = {}
    for line in (REPO_ROOT / ".ci" / "floors.txt").read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, separator, version = line.partition("==")
            assert separator, f"floors.txt line {line!r} is not NAME==VERSION"
            pins[_normalize_name(name)] = _normalize_version(version)
    return pins


def test_every_runtime_dependency_declares_a_floor_pinned_in_floors_txt() -> None:
    assert declared_floors() == pinned_floors()


def test_requirement_parsing_reads_names_extras_and_markers() -> None:
    match = _REQUIREMENT.match("Dask[distributed] >=2024.1, <2027; python_version >= '3.11'")
    assert match is not None
    assert match.groups() == ("Dask", ">=2024.1, <2027")
    assert _normalize_version("8.2.0") == _normalize_version("8.2") == "8.2"
    assert _normalize_version("13") == "13"
    assert _normalize_name("ruamel.yaml_clib") == "ruamel-yaml-clib"
