"""Check archive members before extraction, refusing any that could write outside the archive's folder.

NOTE [member checks]: a member is refused when its name is absolute (or has a drive letter) or has a
``..`` component, or when it is a device file or FIFO. A link is refused when its target is absolute or,
followed through the links of the archive seen so far, leads outside the archive's root; the path of
every member is followed the same way, since writing through a link writes where the link points. After
the last member every symbolic link is followed again with all of the archive's links known, which catches
chains whose meaning a later link changed (``d -> a/..`` made before ``a -> .``). Following the archive's
own links rather than the file system's is what makes this immune to the realpath tricks (CVE-2025-4517
and relatives) that defeat tarfile's ``filter='data'`` before Python 3.11.13. A member whose path, followed
through those links, starts with a reserved top-level name (our state folder ``.emloop-ds``, compared
ignoring case for case-insensitive file systems) is refused too: it could overwrite our records and locks.
"""

from __future__ import annotations

import re
from typing import NoReturn

from emloop_ds.core.errors import ExtractionError

__all__ = ["MemberChecker"]

_SEPARATORS = re.compile(r"[/\\]")
_ABSOLUTE = re.compile(r"^([/\\]|[A-Za-z]:)")
_MAX_LINK_HOPS = 40
"""As many links as Linux follows in one path before it gives up (ELOOP)."""

Location = tuple[str, ...]


class MemberChecker:
    """Check the members of one archive in order; see NOTE [member checks]."""

    def __init__(self, archive_name: str, reserved: str = "") -> None:
        """Start with no links known; refuse members under the top-level folder ``reserved`` (if given)."""
        self._archive_name = archive_name
        self._reserved = reserved.lower()
        self._links: dict[Location, str] = {}

    def check(self, name: str, kind: str, link_target: str = "") -> Location:
        """Check a member of ``kind`` ``file``, ``dir``, ``symlink``, ``hardlink`` or ``device``.

        Returns:
            Where the member is created: its folder followed through the archive's links, then its own name
            (the member replaces a link of that name, as tar does). ``()`` is the archive's root.

        Raises:
            ExtractionError: naming the member and what is wrong with it.
        """
        if kind == "device":
            self._refuse(name, "is a device file or FIFO")
        parts = self._name_parts(name)
        if not parts:
            if kind == "dir":
                return ()  # "./", the archive's root itself
            self._refuse(name, "has an empty name")
        parent = self._follow(name, parts[:-1])
        location = (*parent, parts[-1])
        if kind == "symlink":
            self._check_target(name, link_target, parent)
            self._links[location] = link_target
        elif kind == "hardlink":
            self._check_target(name, link_target, ())
            self._links.pop(location, None)
        else:
            self._check_reserved(name, self._follow(name, parts))
            if kind == "file":
                self._links.pop(location, None)
        self._check_reserved(name, location)
        return location

    def check_links(self) -> None:
        """Follow every symbolic link again, now that all of the archive's links are known.

        Raises:
            ExtractionError: if a link leads outside the archive's root or into a loop.
        """
        for location, target in self._links.items():
            if _resolve(list(location), self._links) is None:
                self._refuse("/".join(location), f"is a link to {target!r}, which leads outside the archive")

    def _name_parts(self, name: str) -> list[str]:
        if _ABSOLUTE.match(name):
            self._refuse(name, "has an absolute path")
        parts = [part for part in _SEPARATORS.split(name) if part not in ("", ".")]
        if ".." in parts:
            self._refuse(name, "has a '..' component")
        return parts

    def _check_reserved(self, name: str, location: Location) -> None:
        if self._reserved and location and location[0].lower() == self._reserved:
            self._refuse(name, f"is inside {self._reserved}/, the folder where emloop-ds keeps its state")

    def _follow(self, name: str, parts: list[str]) -> Location:
        location = _resolve(parts, self._links)
        if location is None:
            self._refuse(name, "would be written through a link that leads outside the archive")
        return location

    def _check_target(self, name: str, target: str, base: Location) -> None:
        if not target or _ABSOLUTE.match(target):
            self._refuse(name, f"is a link to the absolute path {target!r}")
        resolved = _resolve([*base, *_SEPARATORS.split(target)], self._links)
        if resolved is None:
            self._refuse(name, f"is a link to {target!r}, which leads outside the archive")
        self._check_reserved(name, resolved)

    def _refuse(self, name: str, problem: str) -> NoReturn:
        raise ExtractionError(
            f"refused to extract {self._archive_name}: member {name!r} {problem}; nothing was extracted. "
            "Ask the data's publisher for a safe archive, or set `extract: false` for it"
        )


def _resolve(parts: list[str], links: dict[Location, str]) -> Location | None:
    """Follow ``parts`` from the archive's root through ``links``; ``None`` if it leaves the root or loops."""
    resolved: list[str] = []
    pending = list(parts)
    hops = 0
    while pending:
        part = pending.pop(0)
        if part in ("", "."):
            continue
        if part == "..":
            if not resolved:
                return None
            resolved.pop()
            continue
        resolved.append(part)
        target = links.get(tuple(resolved))
        if target is not None:
            hops += 1
            if hops > _MAX_LINK_HOPS or _ABSOLUTE.match(target):
                return None
            resolved.pop()
            pending = _SEPARATORS.split(target) + pending
    return tuple(resolved)
