"""A subset of Go's text/template, for ``--format`` as skopeo and podman take it.

Supported: text and ``{{ }}`` actions with ``{{-``/``-}}`` trimming; field
chains (``.Name``, ``.Labels.foo``, ``.``, ``$``); string, number and bool
literals; function calls with arguments and pipes (``.X | len``);
``if``/``else if``/``else``, ``range`` (with ``else``), ``with``; functions
``len``, ``index``, ``print``, ``printf``, ``println``, ``join``, ``upper``,
``lower``, ``json``, ``eq``, ``ne``, ``not``, ``and``, ``or``. Values are printed
as Go prints them (maps as ``map[k:v]`` with sorted keys, lists as ``[a b]``,
a missing value as ``<no value>``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

_ACTION = re.compile(r"\{\{(-\s)?(.*?)(\s-)?\}\}", re.S)
_TOKEN = re.compile(r'\s*(?:("(?:[^"\\]|\\.)*"|`[^`]*`)|(\|)|(\()|(\))|([^\s|()]+))')
NO_VALUE = "<no value>"


class TemplateError(ValueError):
    """The template cannot be parsed or executed; the message says where."""


@dataclass
class _Node:
    kind: str  # text | action | if | range | with
    text: str = ""
    pipeline: list[list[str]] = field(default_factory=list)
    variables: tuple[str, ...] = ()  # range $i, $v := ... / with $x := ...
    body: list[_Node] = field(default_factory=list)
    alternative: list[_Node] = field(default_factory=list)


def render(template: str, data: Any) -> str:
    """Execute ``template`` on ``data`` (dicts and lists, as from JSON)."""
    nodes = _parse(_lex(template))
    out: list[str] = []
    _execute(nodes, data, {"$": data}, out)
    return "".join(out)


# -- lexing and parsing

def _lex(template: str) -> Iterator[tuple[str, str]]:
    position = 0
    pending_trim = False
    for match in _ACTION.finditer(template):
        text = template[position:match.start()]
        if pending_trim:
            text = text.lstrip()
        if match.group(1):
            text = text.rstrip()
        if text:
            yield "text", text
        yield "action", match.group(2).strip()
        pending_trim = bool(match.group(3))
        position = match.end()
    tail = template[position:]
    if pending_trim:
        tail = tail.lstrip()
    if "{{" in tail:
        raise TemplateError("template: unclosed action")
    if tail:
        yield "text", tail


def _parse(tokens: Iterator[tuple[str, str]], closers: tuple[str, ...] = ()) -> list[_Node]:
    nodes, _ = _parse_until(tokens, closers)
    return nodes


def _parse_until(tokens: Iterator[tuple[str, str]], closers: tuple[str, ...]) -> tuple[list[_Node], str]:
    nodes: list[_Node] = []
    for kind, value in tokens:
        if kind == "text":
            nodes.append(_Node("text", value))
            continue
        keyword, _, rest = value.partition(" ")
        if value in closers or keyword in closers:
            return nodes, value
        if value.startswith("/*"):
            continue
        if keyword in ("if", "range", "with"):
            nodes.append(_block(keyword, rest, tokens))
        elif keyword in ("end", "else"):
            raise TemplateError(f"template: unexpected {{{{{value}}}}}")
        else:
            nodes.append(_Node("action", pipeline=_pipeline(value)))
    if closers:
        raise TemplateError("template: missing {{end}}")
    return nodes, ""


def _block(keyword: str, rest: str, tokens: Iterator[tuple[str, str]]) -> _Node:
    variables: tuple[str, ...] = ()
    declared, assign, pipeline = rest.partition(":=")
    if assign:
        variables = tuple(v.strip() for v in declared.split(","))
        if not all(re.fullmatch(r"\$\w+", v) for v in variables) or len(variables) > 2:
            raise TemplateError(f"template: bad variable declaration {declared.strip()!r}")
        rest = pipeline
    node = _Node(keyword, pipeline=_pipeline(rest), variables=variables)
    node.body, closer = _parse_until(tokens, ("end", "else"))
    if closer.startswith("else"):
        chained = closer[4:].strip()
        if chained.startswith("if "):  # else if: a nested if that shares our {{end}}
            node.alternative = [_block("if", chained[3:], tokens)]
        else:
            node.alternative, _ = _parse_until(tokens, ("end",))
    return node


def _pipeline(text: str) -> list[list[str]]:
    """Split ``a b | c d`` into commands of words; parenthesised groups stay one word."""
    commands: list[list[str]] = [[]]
    depth, group = 0, ""
    for match in _TOKEN.finditer(text):
        literal, pipe, open_, close, word = match.groups()
        piece = literal or word or open_ or close or ""
        if depth:
            group += (" " if group and not open_ and not close else "") + (piece if not pipe else "|")
            depth += 1 if open_ else -1 if close else 0
            if depth == 0:
                commands[-1].append(group)
                group = ""
            continue
        if open_:
            depth, group = 1, "("
        elif pipe:
            commands.append([])
        elif close:
            raise TemplateError(f"template: unexpected ) in {text!r}")
        else:
            commands[-1].append(piece)
    if depth or not all(commands):
        raise TemplateError(f"template: malformed pipeline {text!r}")
    return commands


# -- execution

Scope = dict[str, Any]  # "$" is the root; "$name" a declared variable


def _execute(nodes: list[_Node], dot: Any, scope: Scope, out: list[str]) -> None:
    for node in nodes:
        if node.kind == "text":
            out.append(node.text)
        elif node.kind == "action":
            out.append(format_value(_run(node.pipeline, dot, scope)))
        elif node.kind == "if":
            _execute(node.body if _truth(_run(node.pipeline, dot, scope)) else node.alternative, dot, scope, out)
        elif node.kind == "with":
            value = _run(node.pipeline, dot, scope)
            if _truth(value):
                _execute(node.body, value, {**scope, **dict.fromkeys(node.variables, value)}, out)
            else:
                _execute(node.alternative, dot, scope, out)
        elif node.kind == "range":
            _range(node, _run(node.pipeline, dot, scope), dot, scope, out)


def _range(node: _Node, value: Any, dot: Any, scope: Scope, out: list[str]) -> None:
    if isinstance(value, Mapping):
        pairs = [(k, value[k]) for k in sorted(value)]
    else:
        pairs = list(enumerate(value or []))
    for key, item in pairs:
        bound = (item,) if len(node.variables) == 1 else (key, item)
        _execute(node.body, item, {**scope, **dict(zip(node.variables, bound))}, out)
    if not pairs:
        _execute(node.alternative, dot, scope, out)


def _run(pipeline: list[list[str]], dot: Any, scope: Scope) -> Any:
    value: Any = _MISSING
    for command in pipeline:
        args = [_evaluate(word, dot, scope) for word in command[1:]]
        if value is not _MISSING:
            args.append(value)
        head = command[0]
        if head not in FUNCTIONS and head not in ("true", "false") and re.fullmatch(r"[A-Za-z_]\w*", head):
            raise TemplateError(f'template: function "{head}" not defined')
        if head in FUNCTIONS:
            value = FUNCTIONS[head](*args)
        elif args:
            raise TemplateError(f"template: can't give arguments to non-function {head}")
        else:
            value = _evaluate(head, dot, scope)
    return value


_MISSING = object()


def _evaluate(word: str, dot: Any, scope: Scope) -> Any:
    if word.startswith("("):
        return _run(_pipeline(word[1:-1]), dot, scope)
    if word[0] in "\"`":
        return json.loads(word) if word[0] == '"' else word[1:-1]
    if word in ("true", "false"):
        return word == "true"
    if re.fullmatch(r"-?\d+", word):
        return int(word)
    if word == ".":
        return dot
    if word.startswith(("$", ".")):
        head, _, path = word.partition(".") if word.startswith("$") else ("", "", word[1:])
        if head and head not in scope:
            raise TemplateError(f"template: undefined variable {head!r}")
        value = scope[head] if head else dot
        for name in filter(None, path.split(".")):
            value = _field(value, name, word)
        return value
    if word in FUNCTIONS:
        return FUNCTIONS[word]()
    raise TemplateError(f'template: function "{word}" not defined')


def _field(value: Any, name: str, path: str) -> Any:
    if isinstance(value, Mapping):
        return value.get(name)
    if value is None:
        return None
    raise TemplateError(f"template: can't evaluate field {name} in {path}")


def _truth(value: Any) -> bool:
    return bool(value) and value is not _MISSING


def format_value(value: Any) -> str:
    """A value as Go's fmt prints it with %v."""
    if value is None:
        return NO_VALUE
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping):
        return "map[" + " ".join(f"{k}:{format_value(value[k])}" for k in sorted(value)) + "]"
    if isinstance(value, (list, tuple)):
        return "[" + " ".join(format_value(v) for v in value) + "]"
    return str(value)


def _printf(pattern: str, *args: Any) -> str:
    converted = re.sub(r"%[-+# 0]*\d*(?:\.\d+)?[vsdq]", lambda m: m.group(0)[:-1] + ("r" if m.group(0)[-1] == "q" else "s"), pattern)
    shown = tuple(repr(a) if isinstance(a, str) and "%r" in converted else format_value(a) for a in args)
    return converted % shown


def _index(collection: Any, *keys: Any) -> Any:
    for key in keys:
        try:
            collection = collection[key]
        except (KeyError, IndexError, TypeError):
            if isinstance(collection, Mapping):
                return None
            raise TemplateError(f"template: error calling index: index {key!r} out of range") from None
    return collection


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "len": lambda v: len(v or ()),
    "index": _index,
    "print": lambda *a: " ".join(format_value(v) for v in a),
    "println": lambda *a: " ".join(format_value(v) for v in a) + "\n",
    "printf": _printf,
    "join": lambda items, sep: sep.join(format_value(i) for i in items or ()) if isinstance(sep, str) else format_value(items),
    "upper": lambda s: format_value(s).upper(),
    "lower": lambda s: format_value(s).lower(),
    "json": lambda v: json.dumps(v, separators=(",", ":")),
    "eq": lambda a, *b: any(a == x for x in b),
    "ne": lambda a, b: a != b,
    "not": lambda v: not _truth(v),
    "and": lambda *a: next((v for v in a if not _truth(v)), a[-1]),
    "or": lambda *a: next((v for v in a if _truth(v)), a[-1]),
}
