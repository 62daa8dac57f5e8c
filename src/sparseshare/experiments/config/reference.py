"""Every key of the experiment config, read from the schema itself: its dotted name, type, default, meaning.

The keys are the fields of :class:`ExperimentConfig` and of its sections, walked through their type hints:
a top-level section (``data``, ``train``, ...) is a group of keys, a section that may be null
(``data.table``, ``data.columns``) is a key of its own and its fields are keys below it, and a mapping
(``data.limits``, ``resources.units``, ``sweep``) is one key, whatever it maps.

A key's meaning is the text the schema's source already holds, in this order: the comment lines right
above its field, the comment on the field's own line(s), and the sentences of its class's docstring that
begin with the field's name (SearchSettings's ``alpha``: fraction ...). A section that may be null with no
comment of its own is described by its class docstring's first phrase. A key without any text has an empty
meaning, and :func:`undocumented` names each such key (tests/experiments/test_config_reference.py fails on
one).

Nothing is built or read but the source files. The systems that read each key are the registry's
business, two rooms up (experiments/results/config_keys.py joins them).
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import io
import re
import sys
import textwrap
import tokenize
import types
import typing
from dataclasses import dataclass
from typing import Any, get_args, get_origin

import yaml

from sparseshare.experiments.config.experiment import ExperimentConfig

REQUIRED = "required"  # the default shown for a key a config must set
TOP = ""  # the name of the group of the top-level keys that are not sections


@dataclass(frozen=True)
class Key:
    name: str  # dotted, as ``--set`` names it: "data.limits"
    type: str  # as a config writes it: "int", "str or null", "dict[str, int]", "section or null"
    default: str  # the default, in YAML; REQUIRED when there is none
    meaning: str  # the schema's own words ("``x``" marks a name); "" when the schema has none


@dataclass(frozen=True)
class Section:
    name: str  # "data"; TOP for the top-level keys
    about: str  # the section's own description (its class docstring's first paragraph)
    keys: tuple[Key, ...]


def sections(cls: type = ExperimentConfig) -> list[Section]:
    """The config's keys, grouped: first the top-level keys that are not sections, then each section's
    (its nested sections' keys among them), in the order the schema declares them."""
    hints = typing.get_type_hints(cls)
    top, out = [], []
    for f in _fields(cls):
        if dataclasses.is_dataclass(hints[f.name]):
            section = hints[f.name]
            out.append(Section(f.name, _about(section), tuple(_keys(section, f.name))))
        else:
            top.append(_key(cls, f, hints[f.name], ""))
    return [Section(TOP, _about(cls), tuple(top)), *out]


def all_keys(cls: type = ExperimentConfig) -> list[Key]:
    """Every key of the config, in the order of :func:`sections`."""
    return [k for s in sections(cls) for k in s.keys]


def undocumented(cls: type = ExperimentConfig) -> list[str]:
    """The dotted names of the keys whose meaning the schema does not give (no comment, no docstring)."""
    return [k.name for k in all_keys(cls) if not k.meaning]


def _fields(cls: type) -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(cls) if f.init]


def _keys(cls: type, prefix: str) -> list[Key]:
    hints = typing.get_type_hints(cls)
    out = []
    for f in _fields(cls):
        key = _key(cls, f, hints[f.name], prefix)
        out.append(key)
        section = _section_of(hints[f.name])
        if section is not None:  # a section that may be null: its own key, then its keys
            out += _keys(section, key.name)
    return out


def _section_of(tp) -> type | None:
    """The dataclass of a field typed ``Section`` or ``Section | None``; None for any other type."""
    if dataclasses.is_dataclass(tp):
        return tp
    if get_origin(tp) in (typing.Union, types.UnionType):
        found = [a for a in get_args(tp) if dataclasses.is_dataclass(a)]
        return found[0] if len(found) == 1 else None
    return None


def _key(cls: type, f: dataclasses.Field, tp, prefix: str) -> Key:
    name = f"{prefix}.{f.name}" if prefix else f.name
    meaning = _meanings(_owner(cls, f.name)).get(f.name, "")
    section = _section_of(tp)
    if not meaning and section is not None:
        meaning = _summary(_docstring(section))
    return Key(name, type_name(tp), _default(f), meaning)


def type_name(tp) -> str:
    """A type as a config writes it: ``null`` for None, ``or`` between alternatives, ``section`` for a
    nested section, ``{a, b}`` for a section inside a mapping (its keys), ``any`` for anything."""
    return _type_name(tp, nested=False)


def _type_name(tp, nested: bool) -> str:
    if tp is type(None):
        return "null"
    if tp is Any:
        return "any"
    origin, args = get_origin(tp), get_args(tp)
    if origin in (typing.Union, types.UnionType):
        ordered = [a for a in args if a is not type(None)] + [a for a in args if a is type(None)]
        return " or ".join(_type_name(a, nested) for a in ordered)
    if dataclasses.is_dataclass(tp):
        return "{" + ", ".join(f.name for f in _fields(tp)) + "}" if nested else "section"
    if origin is not None:
        inner = ", ".join(_type_name(a, nested=True) for a in args)
        return f"{getattr(origin, '__name__', str(origin))}[{inner}]"
    return getattr(tp, "__name__", str(tp))


def _default(f: dataclasses.Field) -> str:
    if f.default is not dataclasses.MISSING:
        value = f.default
    elif f.default_factory is not dataclasses.MISSING:
        value = f.default_factory()
    else:
        return REQUIRED
    if dataclasses.is_dataclass(value):
        value = dataclasses.asdict(value)
    text = yaml.safe_dump(value, default_flow_style=True, sort_keys=False, width=sys.maxsize)
    return text.strip().removesuffix("...").strip()


def _owner(cls: type, name: str) -> type:
    """The class in ``cls``'s MRO whose own body declares field ``name`` (where its comments are)."""
    return next(c for c in cls.__mro__ if name in c.__dict__.get("__annotations__", {}))


@functools.cache
def _class_source(cls: type) -> tuple[ast.ClassDef, dict[int, str], set[int]]:
    """The class's syntax tree, its comments (line -> text) and the lines that hold code."""
    source = textwrap.dedent("".join(inspect.getsourcelines(cls)[0]))
    tree = ast.parse(source).body[0]
    assert isinstance(tree, ast.ClassDef) and tree.name == cls.__name__, cls
    comments, code = {}, set()
    skip = (tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER)
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            text = tok.string.lstrip("#").strip()
            if not re.match(r"(fmt|noqa|type|pragma)\b", text):  # tools' marks say nothing of the key
                comments[tok.start[0]] = text
        elif tok.type not in skip:
            code.update(range(tok.start[0], tok.end[0] + 1))
    return tree, comments, code


def _docstring(cls: type) -> str:
    """The class's own docstring ("" without one: not the signature a dataclass makes up); a class
    without one is described by its module's docstring."""
    own = ast.get_docstring(_class_source(cls)[0])
    return own or inspect.getdoc(sys.modules[cls.__module__]) or ""


def _about(cls: type) -> str:
    """A section's description: the first paragraph of its class's (else its module's) docstring."""
    return _paragraphs(_docstring(cls))[0] if _docstring(cls) else ""


def _summary(doc: str) -> str:
    """A docstring's first phrase: up to its first '.', ';' or ':' (a nested section's meaning)."""
    first = _paragraphs(doc)[0] if doc else ""
    return re.split(r"[.;:](?:\s|$)", first, maxsplit=1)[0].strip()


def _paragraphs(doc: str) -> list[str]:
    return [" ".join(p.split()) for p in re.split(r"\n\s*\n", doc.strip())]


# a sentence (a paragraph's start, or after '. ' or '; ') that begins with a field's name: ``name``,
# ``a``/``b``; what follows is its meaning: ": text", " (where): text" or " verb ..."
_MARK = re.compile(r"(?:^|(?<=[.;] ))``(\w+)``((?:/``\w+``)*)")


@functools.cache
def _meanings(cls: type) -> dict[str, str]:
    """Field name -> its meaning, for the fields ``cls``'s own body declares (see the module docstring)."""
    tree, comments, code = _class_source(cls)
    fields = {f.name for f in _fields(cls)} & set(cls.__dict__.get("__annotations__", {}))
    out: dict[str, list[str]] = {name: [] for name in fields}
    for node in tree.body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.target.id in out:
            above, line = [], node.lineno - 1
            while line in comments and line not in code:
                above.insert(0, comments[line])
                line -= 1
            own = [comments[n] for n in range(node.lineno, node.end_lineno + 1) if n in comments]
            out[node.target.id] += [" ".join(above), " ".join(own)]
    for paragraph in _paragraphs(ast.get_docstring(tree) or ""):
        marks = [m for m in _MARK.finditer(paragraph) if m.group(1) in fields]
        for m, after in zip(marks, [*marks[1:], None]):
            text = _sentence(paragraph[m.end() : after.start() if after else len(paragraph)])
            for name in [m.group(1), *re.findall(r"``(\w+)``", m.group(2))]:
                if name in out:
                    out[name].append(text)
    return {name: "; ".join(p for p in parts if p) for name, parts in out.items()}


def _sentence(rest: str) -> str:
    """What a docstring says after a field's name: ": text" or " (where): text" as "where: text"."""
    rest = rest.strip().rstrip(";:").strip()
    rest = rest[:-1] if rest.endswith(".") and not rest.endswith("..") else rest  # a phrase, as comments are
    where = re.match(r"\(([^()]*)\):\s*(.*)", rest, re.S)
    if where:
        return f"{where.group(1)}: {where.group(2)}"
    return rest.removeprefix(":").strip()
