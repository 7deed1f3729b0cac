"""A griffe extension for the docs build: reST markup in docstrings becomes Markdown.

authcore's docstrings use reStructuredText roles (``:class:`~authcore.SessionStore```,
``:meth:`verify```), which read well in ``help()`` and in editors. mkdocstrings
renders Markdown, so this extension rewrites each role once the package is
loaded:

* a target that names an authcore object rendered by the API reference
  (``::: module`` lines in ``docs/reference/*.md``), absolute or relative to
  the object whose docstring it is in or to one of its parents, becomes an
  autorefs cross-reference to where that page documents it;
* anything else (the standard library, SQLAlchemy, private helpers) becomes
  plain inline code, so the strict build never meets an unresolvable link.

A leading ``~`` shows only the last name, as in Sphinx. reST literal blocks
(a paragraph ending in ``::`` and an indented block) become fenced code. A
method that overrides a documented one without a docstring of its own gets the
docstring it overrides, so each store's page states the contract's guarantees.

Nothing in ``authcore/`` changes: this runs on griffe's copy of the docstrings.
"""

from __future__ import annotations

import ast
import re
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import griffe

_ROLE = re.compile(r":(?:py:)?(?:class|func|meth|data|attr|mod|exc|obj|const):`(~?)([^`]+)`")
_ROOT = "authcore"
_REFERENCE = Path(__file__).resolve().parent.parent / "reference"


def _member(scope: griffe.Object | griffe.Alias, dotted: str) -> griffe.Object | None:
    """Follow ``dotted`` from ``scope`` through members, resolving aliases."""
    current: griffe.Object | griffe.Alias = scope
    for name in dotted.split("."):
        try:
            current = current.members[name]
        except (KeyError, griffe.AliasResolutionError, griffe.CyclicAliasError):
            return None
    return _final(current)


def _final(obj: griffe.Object | griffe.Alias) -> griffe.Object | None:
    try:
        return obj.final_target if isinstance(obj, griffe.Alias) else obj
    except (griffe.AliasResolutionError, griffe.CyclicAliasError):
        return None


def _rendered_modules() -> list[str]:
    """The modules the API reference renders (its ``::: module`` lines)."""
    found = []
    for page in sorted(_REFERENCE.glob("*.md")):
        found += re.findall(r"^:::\s+(\S+)\s*$", page.read_text(encoding="utf-8"), re.M)
    return found


def _anchors(pkg: griffe.Module) -> dict[int, str]:
    """Map each rendered object (by identity) to the identifier its page registers."""
    anchors: dict[int, str] = {}

    def visit(obj: griffe.Object, path: str) -> None:
        anchors.setdefault(id(obj), path)
        for name, member in obj.members.items():
            target = _final(member)
            # Submodules are rendered on their own pages, if at all; objects
            # without a docstring are not rendered.
            if (
                target is not None
                and member.is_public
                and not target.is_module
                and target.docstring is not None
            ):
                visit(target, f"{path}.{name}")

    for dotted in _rendered_modules():
        module = pkg if dotted == _ROOT else _member(pkg, dotted.removeprefix(_ROOT + "."))
        if module is not None and dotted != _ROOT:
            visit(module, dotted)
    return anchors


def _resolve(pkg: griffe.Module, obj: griffe.Object, target: str) -> griffe.Object | None:
    if target == _ROOT or target.startswith(_ROOT + "."):
        rest = target[len(_ROOT) + 1 :]
        return _member(pkg, rest) if rest else pkg
    scope: griffe.Object | None = obj
    while scope is not None:
        if scope.is_module or scope.is_class:
            found = _member(scope, target)
            if found is not None:
                return found
        scope = scope.parent
    return None


def _rewrite(pkg: griffe.Module, anchors: dict[int, str], obj: griffe.Object, text: str) -> str:
    def replace(match: re.Match[str]) -> str:
        short, target = match.group(1) == "~", match.group(2).removesuffix("()")
        label = target.rsplit(".", 1)[-1] if short else target
        found = _resolve(pkg, obj, target)
        anchor = anchors.get(id(found)) if found is not None else None
        return f"[`{label}`][{anchor}]" if anchor else f"`{label}`"

    return _literal_blocks(_ROLE.sub(replace, text))


def _language(body: list[str]) -> str:
    """``python`` when the block parses as Python (top-level ``await`` allowed), else ``text``."""
    try:
        compile("\n".join(body), "<docstring>", "exec", ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, True)
    except SyntaxError:
        return "text"
    return "python"


def _literal_blocks(text: str) -> str:
    """Turn reST literal blocks (``text::`` then an indented block) into fenced code.

    ``Example::`` becomes a Google-style ``Example:`` section holding the
    fence; elsewhere the block is dedented to the paragraph's indentation.
    """
    lines = text.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.rstrip().endswith("::") or i + 1 >= len(lines) or lines[i + 1].strip():
            out.append(line)
            i += 1
            continue
        indent = len(line) - len(line.lstrip())
        j = i + 2
        block: list[str] = []
        while j < len(lines) and (
            not lines[j].strip() or len(lines[j]) - len(lines[j].lstrip()) > indent
        ):
            block.append(lines[j])
            j += 1
        while block and not block[-1].strip():
            block.pop()
        if not block:
            out.append(line)
            i += 1
            continue
        body = textwrap.dedent("\n".join(block)).split("\n")
        head = line.rstrip()[:-2].rstrip()
        section = head.strip() in {"Example", "Examples"}
        pad = " " * (indent + 4 if section else indent)
        out += [f"{head}:", *([] if section else [""])]
        fence = [pad + b if b.strip() else "" for b in body]
        out += [f"{pad}```{_language(body)}", *fence, f"{pad}```", ""]
        i = j
    return "\n".join(out)


def _inherit_docstrings(cls: griffe.Class) -> None:
    """Give an overriding method without a docstring the one it overrides.

    ``SessionStore`` and ``InMemorySessionStore`` implement ``BaseSessionStore``,
    where each method's guarantees are stated once.
    """
    try:
        bases = cls.mro()
    except (ValueError, griffe.AliasResolutionError):
        return
    for name, member in cls.members.items():
        if isinstance(member, griffe.Alias) or member.docstring is not None:
            continue
        for base in bases:
            inherited = base.members.get(name)
            if inherited is not None and inherited.docstring is not None:
                member.docstring = griffe.Docstring(
                    inherited.docstring.value, parent=member, parser=inherited.docstring.parser
                )
                break


def _walk(obj: griffe.Object, seen: set[int]) -> Iterator[griffe.Object]:
    if id(obj) in seen:
        return
    seen.add(id(obj))
    yield obj
    for member in obj.members.values():
        if not isinstance(member, griffe.Alias):
            yield from _walk(member, seen)


class SphinxRoles(griffe.Extension):
    """Rewrite Sphinx roles in every docstring of the ``authcore`` package."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        if pkg.name != _ROOT:
            return
        for obj in _walk(pkg, set()):
            if obj.is_class:
                _inherit_docstrings(obj)  # type: ignore[arg-type]
        anchors = _anchors(pkg)
        for obj in _walk(pkg, set()):
            if obj.docstring is not None:
                obj.docstring.value = _rewrite(pkg, anchors, obj, obj.docstring.value)
