"""Strict request bodies: a frozen dataclass describes a body; `parse()` refuses anything else.

Unknown fields, missing fields, wrong types and over-long strings are refused with a BadRequest
that names the field. The same dataclasses describe the bodies in the OpenAPI document.
Every piece of client JSON (request bodies, WebSocket messages) is decoded by `decode_json()`, which
refuses what would fail later instead: nesting deeper than MAX_DEPTH, lone UTF-16 surrogates
(they cannot be stored or encoded), NaN and Infinity.
"""

from __future__ import annotations

import dataclasses
import json
import types
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

from aiohttp import web

from cloudbank.platform.errors import BadRequest, TooLarge, UnsupportedMedia

T = TypeVar("T")
MAX_STRING = 2000
MAX_ITEMS = 200
MAX_DEPTH = 32  # no body or message of ours nests deeper than a handful of levels


def _refuse_constant(name: str) -> Any:
    raise BadRequest(f"{name} is not a JSON number; send a finite number")


def _where(path: list[str | int]) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")


def _has_surrogate(text: str) -> bool:
    if text.isascii():
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def decode_json(raw: str | bytes, what: str = "the body") -> Any:
    """Decode client JSON, refusing (BadRequest naming the field) what would fail later."""
    try:
        data = json.loads(raw, parse_constant=_refuse_constant)
    except RecursionError:
        raise BadRequest(f"{what} nests deeper than {MAX_DEPTH} levels") from None
    except (ValueError, UnicodeDecodeError):
        raise BadRequest(f"{what} is not valid JSON") from None
    # An explicit stack: walking a deep value must not recurse into Python's own limit.
    stack: list[tuple[Any, list[str | int]]] = [(data, [])]
    while stack:
        value, path = stack.pop()
        if len(path) > MAX_DEPTH:
            raise BadRequest(f"{what} nests deeper than {MAX_DEPTH} levels")
        if isinstance(value, str):
            if _has_surrogate(value):
                where = _where(path)
                raise BadRequest(f"field '{where}' holds a lone UTF-16 surrogate; send valid Unicode",
                                 field=where)
        elif isinstance(value, dict):
            for key, item in value.items():
                if _has_surrogate(key):
                    raise BadRequest("a field name holds a lone UTF-16 surrogate; send valid Unicode",
                                     field=_where(path))
                stack.append((item, [*path, key[:64]]))
        elif isinstance(value, list):
            stack.extend((item, [*path, i]) for i, item in enumerate(value))
    return data


def limit(max_len: int) -> Any:
    """Field metadata: `name: str = field(metadata=limit(64))` caps a string's length."""
    return {"max_len": max_len}


def _check(name: str, tp: Any, value: Any, max_len: int) -> Any:
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        options = get_args(tp)
        if value is None and type(None) in options:
            return None
        errors = []
        for opt in options:
            if opt is type(None):
                continue
            try:
                return _check(name, opt, value, max_len)
            except BadRequest as exc:
                errors.append(exc)
        raise errors[0] if errors else BadRequest(f"field '{name}' must not be null", field=name)
    if origin is Literal:
        if value not in get_args(tp):
            raise BadRequest(f"field '{name}' must be one of {', '.join(map(str, get_args(tp)))}", field=name)
        return value
    if origin is list:
        (item_tp,) = get_args(tp)
        if not isinstance(value, list):
            raise BadRequest(f"field '{name}' must be a list", field=name)
        if len(value) > MAX_ITEMS:
            raise BadRequest(f"field '{name}' has more than {MAX_ITEMS} items", field=name)
        return [_check(f"{name}[{i}]", item_tp, v, max_len) for i, v in enumerate(value)]
    if origin is dict:
        key_tp, val_tp = get_args(tp)
        if not isinstance(value, dict) or len(value) > MAX_ITEMS:
            raise BadRequest(f"field '{name}' must be an object of at most {MAX_ITEMS} entries", field=name)
        return {_check(name, key_tp, k, 64): _check(f"{name}.{k}", val_tp, v, max_len) for k, v in value.items()}
    if tp is Any:
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise BadRequest(f"field '{name}' must be true or false", field=name)
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int) or abs(value) > 2**53:
            raise BadRequest(f"field '{name}' must be a whole number", field=name)
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
            raise BadRequest(f"field '{name}' must be a number", field=name)
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise BadRequest(f"field '{name}' must be a string", field=name)
        if len(value) > max_len:
            raise BadRequest(f"field '{name}' is longer than {max_len} characters", field=name)
        if "\x00" in value:
            raise BadRequest(f"field '{name}' contains a NUL character", field=name)
        return value
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return parse(tp, value, prefix=f"{name}.")
    raise TypeError(f"unsupported field type {tp!r}")


def parse(model: type[T], data: Any, prefix: str = "") -> T:
    """Build `model` from decoded JSON, refusing unknown, missing and mistyped fields."""
    if not isinstance(data, dict):
        raise BadRequest(f"the body{' ' + prefix.rstrip('.') if prefix else ''} must be a JSON object")
    fields = {f.name: f for f in dataclasses.fields(model)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise BadRequest(f"unknown field '{prefix}{unknown[0][:64]}'", field=prefix + unknown[0][:64])
    hints = get_type_hints(model)
    values: dict[str, Any] = {}
    for name, f in fields.items():
        if name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise BadRequest(f"field '{prefix}{name}' is required", field=prefix + name)
            continue
        values[name] = _check(prefix + name, hints[name], data[name], f.metadata.get("max_len", MAX_STRING))
    return model(**values)


async def read_json(request: web.Request, model: type[T]) -> T:
    """Read and validate a JSON body for `model` (415 on a wrong type, 413 on too large)."""
    if request.content_type != "application/json":
        raise UnsupportedMedia("send the body as application/json")
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise TooLarge("the body is too large") from None
    return parse(model, decode_json(raw))


def json_schema(tp: Any) -> dict[str, Any]:
    """JSON Schema of a body dataclass or field type (for the OpenAPI document)."""
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        opts = [json_schema(a) for a in get_args(tp) if a is not type(None)]
        schema = opts[0] if len(opts) == 1 else {"anyOf": opts}
        return {**schema, "nullable": True} if type(None) in get_args(tp) else schema
    if origin is Literal:
        return {"enum": list(get_args(tp))}
    if origin is list:
        return {"type": "array", "items": json_schema(get_args(tp)[0]), "maxItems": MAX_ITEMS}
    if origin is dict:
        return {"type": "object", "additionalProperties": json_schema(get_args(tp)[1])}
    simple = {bool: "boolean", int: "integer", float: "number", str: "string"}
    if tp in simple:
        return {"type": simple[tp]}
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        hints = get_type_hints(tp)
        props: dict[str, Any] = {}
        required = []
        for f in dataclasses.fields(tp):
            props[f.name] = json_schema(hints[f.name])
            if hints[f.name] is str or get_origin(hints[f.name]) in (Union, types.UnionType):
                props[f.name].setdefault("maxLength", f.metadata.get("max_len", MAX_STRING))
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                required.append(f.name)
        return {"type": "object", "properties": props, "required": required, "additionalProperties": False}
    return {}

