"""Command-line options from a config dataclass: one --option per field, its help the field's comment.

    add_config_options(parser, CharLMConfig, required={"text", "out"})
    cfg = config_from_args(CharLMConfig, args)

Only the fields' own types are accepted (int, float, str, bool, or those | None, where the word
"none" gives None); argparse refuses unknown options, so a misspelt key is an error, never ignored.
"""
from __future__ import annotations

import argparse
import dataclasses
import inspect
import re

_FIELD_LINE = re.compile(r"^\s+(\w+)\s*:\s*[^=#]+(?:=[^#]*)?#\s*(.+)$")


def field_comments(cls) -> dict[str, str]:
    """The trailing comment of each field, from the class and its bases (subclasses win)."""
    comments = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            source = inspect.getsource(klass)
        except (OSError, TypeError):
            continue
        for line in source.splitlines():
            m = _FIELD_LINE.match(line)
            if m:
                comments[m.group(1)] = m.group(2).strip()
    return comments


def _parser_for(annotation):
    """(type function, is_bool) for a field annotation such as 'int | None'."""
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", str(annotation))
    parts = [p.strip() for p in text.split("|")]
    optional = "None" in parts
    base = next((p for p in parts if p != "None"), "str")
    if base == "bool":
        return None, True
    conv = {"int": int, "float": float, "str": str}.get(base, str)

    def parse(value: str):
        if optional and value.lower() == "none":
            return None
        try:
            return conv(value.replace("_", "")) if conv in (int, float) else conv(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {text}, got {value!r}") from None

    parse.__name__ = text
    return parse, False


def add_config_options(parser, cls, required=(), positional=(), skip=()):
    """One option per dataclass field; `required` fields get required options, `positional` ones
    become positional arguments, `skip` ones are left out."""
    comments = field_comments(cls)
    hints = {f.name: f.type for f in dataclasses.fields(cls)}
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        conv, is_bool = _parser_for(hints[f.name])
        help_text = comments.get(f.name, "").replace("%", "%%")
        if f.name in positional:
            parser.add_argument(f.name, type=conv, help=help_text)
            continue
        flag = "--" + f.name.replace("_", "-")
        default = f.default if f.default is not dataclasses.MISSING else None
        if is_bool:
            parser.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=default,
                                help=help_text + f" (default {default})")
        elif f.name in required:
            parser.add_argument(flag, dest=f.name, type=conv, required=True, metavar=f.name.upper(), help=help_text)
        else:
            parser.add_argument(flag, dest=f.name, type=conv, default=default, metavar=f.name.upper(),
                                help=help_text + f" (default {default})")


def config_from_args(cls, args, **overrides):
    """The dataclass filled from parsed arguments (fields only; other attributes are ignored)."""
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if hasattr(args, f.name)}
    values.update(overrides)
    return cls(**values)

