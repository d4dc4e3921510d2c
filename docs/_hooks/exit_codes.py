"""Replace the ``<!-- exit-code-table -->`` marker of a guide page with the error tree's exit codes.

A MkDocs hook (mkdocs.yml, ``hooks:``): the table is made from the classes of ``emloop_ds.core.errors``
at build time, each with its ``exit_code`` and the first line of its docstring, so it cannot go stale.
"""

from __future__ import annotations

from typing import Any

MARKER = "<!-- exit-code-table -->"


def exit_code_table() -> str:
    """Return a Markdown table of every error class, depth first from ``EmloopDsError``."""
    from emloop_ds.core.errors import EmloopDsError

    rows = ["| error | base classes | exit code | meaning |", "|---|---|---|---|"]

    def visit(cls: type[EmloopDsError], depth: int) -> None:
        bases = ", ".join(f"`{base.__name__}`" for base in cls.__bases__)
        summary = (cls.__doc__ or "").strip().splitlines()[0]
        indent = "&nbsp;" * 4 * depth
        rows.append(f"| {indent}`{cls.__name__}` | {bases} | {cls.exit_code} | {summary} |")
        for subclass in sorted(cls.__subclasses__(), key=lambda sub: sub.__name__):
            if subclass.__module__ == cls.__module__:
                visit(subclass, depth + 1)

    visit(EmloopDsError, 0)
    return "\n".join(rows)


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    """Put the exit-code table in place of its marker."""
    return markdown.replace(MARKER, exit_code_table()) if MARKER in markdown else markdown
