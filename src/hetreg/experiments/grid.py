"""Grid specifications over dotted configuration keys, and helpers for nested dicts.

A grid axis is written ``key=v1,v2,...`` on the command line (``--grid loss.name=mse,biv``).
Each comma-separated item is either

* an inclusive integer range ``lo-hi`` (``seed=0-9`` gives 0, 1, ..., 9), or
* a YAML value (``1``, ``0.5``, ``1e-3``, ``true``, ``null``, ``[64, 64]``, ``{a: 1}``, ``"a,b"``).

Commas inside brackets, braces or quotes do not split items. Expanding several axes gives their
Cartesian product, in the order the axes were given (the last axis varies fastest).
"""

from __future__ import annotations

import copy
import itertools
import json
import re
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

import yaml

_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_RANGE_RE = re.compile(r"^\s*(-?\d+)\s*-\s*(-?\d+)\s*$")
_MAX_RANGE = 100_000


@dataclass(frozen=True)
class GridAxis:
    """One swept key and the values it takes, in order."""

    key: str
    values: tuple[Any, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "values": list(self.values)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "GridAxis":
        return cls(key=str(d["key"]), values=tuple(d["values"]))


def parse_value(text: str) -> Any:
    """Parse one command-line value as YAML 1.2 (numbers, booleans, null, lists, mappings, strings).

    Same rules as ``--set`` (:func:`hetreg.experiments.config.parse_yaml_value`): ``1e-3`` is the
    float 0.001. Raises ``ValueError`` for malformed YAML such as an unclosed bracket.
    """
    from hetreg.experiments.config import parse_yaml_value

    try:
        return parse_yaml_value(text.strip())
    except yaml.YAMLError as exc:
        first = str(exc).splitlines()[0]
        raise ValueError(f"cannot parse {text!r} as a YAML value ({first})") from None


def split_items(text: str) -> list[str]:
    """Split ``text`` on commas that are outside brackets, braces and quotes."""
    items: list[str] = []
    depth = 0
    quote: str | None = None
    current: list[str] = []
    for ch in text:
        if quote is not None:
            current.append(ch)
            if ch == quote:
                quote = None
            continue
        if ch in "\"'":
            quote = ch
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        elif ch == "," and depth == 0:
            items.append("".join(current))
            current = []
            continue
        current.append(ch)
    items.append("".join(current))
    return items


def check_key(key: str, *, flag: str, spec: str) -> None:
    """Raise ``ValueError`` unless ``key`` is a dotted identifier such as ``loss.eps``."""
    if not _KEY_RE.match(key):
        raise ValueError(
            f"{flag} {spec!r}: {key!r} is not a dotted configuration key; write e.g. loss.eps=0.1,0.5"
        )


def parse_assignment(spec: str, *, flag: str = "--set") -> tuple[str, Any]:
    """Parse ``key=value`` (one YAML value) as given to ``--set``."""
    if "=" not in spec:
        raise ValueError(f"{flag} {spec!r}: expected key=value, e.g. {flag} loss.eps=0.5")
    key, _, raw = spec.partition("=")
    key = key.strip()
    check_key(key, flag=flag, spec=spec)
    try:
        return key, parse_value(raw)
    except ValueError as exc:
        raise ValueError(f"{flag} {spec!r}: {exc}") from None


def parse_grid_spec(spec: str, *, flag: str = "--grid") -> GridAxis:
    """Parse one ``key=v1,v2,...`` grid axis (see the module docstring for the value syntax).

    Raises:
        ValueError: naming ``flag`` and the spec, for a missing ``=``, a bad key, an empty item,
            a decreasing or huge range, malformed YAML, or a repeated value.
    """
    if "=" not in spec:
        raise ValueError(f"{flag} {spec!r}: expected key=v1,v2,... (e.g. {flag} loss.name=mse,biv or {flag} seed=0-9)")
    key, _, raw = spec.partition("=")
    key = key.strip()
    check_key(key, flag=flag, spec=spec)
    if not raw.strip():
        raise ValueError(f"{flag} {spec!r}: no values after '='; list them like {key}=1,2,3 or {key}=0-9")
    values: list[Any] = []
    for item in split_items(raw):
        if not item.strip():
            raise ValueError(f"{flag} {spec!r}: empty value between commas; remove the extra comma")
        match = _RANGE_RE.match(item)
        if match:
            lo, hi = int(match.group(1)), int(match.group(2))
            if hi < lo:
                raise ValueError(f"{flag} {spec!r}: range {item.strip()!r} is decreasing; write {hi}-{lo}")
            if hi - lo + 1 > _MAX_RANGE:
                raise ValueError(f"{flag} {spec!r}: range {item.strip()!r} has more than {_MAX_RANGE} values")
            values.extend(range(lo, hi + 1))
            continue
        try:
            values.append(parse_value(item))
        except ValueError as exc:
            raise ValueError(f"{flag} {spec!r}: {exc}") from None
    seen: set[tuple[str, str]] = set()
    for value in values:
        identity = (type(value).__name__, json.dumps(value, sort_keys=True, default=str))
        if identity in seen:
            raise ValueError(f"{flag} {spec!r}: value {value!r} appears twice; list each value once")
        seen.add(identity)
    return GridAxis(key=key, values=tuple(values))


def parse_grid(specs: Iterable[str], *, flag: str = "--grid") -> tuple[GridAxis, ...]:
    """Parse several grid axes; the same key may not be swept twice."""
    axes = tuple(parse_grid_spec(spec, flag=flag) for spec in specs)
    keys = [axis.key for axis in axes]
    for key in keys:
        if keys.count(key) > 1:
            raise ValueError(f"{flag}: key {key!r} is given more than once; merge the values into one {flag} {key}=...")
    for a in keys:
        for b in keys:
            if a != b and b.startswith(a + "."):
                raise ValueError(f"{flag}: keys {a!r} and {b!r} overlap; sweep one of them only")
    return axes


def expand_grid(axes: Sequence[GridAxis]) -> list[dict[str, Any]]:
    """Cartesian product of the axes: a list of ``{key: value}`` points (one empty point if no axes)."""
    keys = [axis.key for axis in axes]
    return [dict(zip(keys, combo)) for combo in itertools.product(*(axis.values for axis in axes))]


def get_dotted(d: Mapping[str, Any], key: str, default: Any = None) -> Any:
    """``d["a"]["b"]`` for ``key="a.b"``, or ``default`` when a level is missing."""
    node: Any = d
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return default
        node = node[part]
    return node


def set_dotted(d: Mapping[str, Any], key: str, value: Any) -> dict[str, Any]:
    """Return a deep copy of ``d`` with ``key`` (dotted) set to ``value``, creating levels as needed.

    Raises ``ValueError`` when an intermediate level exists and is not a mapping.
    """
    out = copy.deepcopy(dict(d))
    node = out
    parts = key.split(".")
    for i, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = {}
        elif not isinstance(child, Mapping):
            prefix = ".".join(parts[: i + 1])
            raise ValueError(f"cannot set {key!r}: {prefix!r} is {child!r}, not a section")
        node[part] = dict(child)
        node = node[part]
    node[parts[-1]] = value
    return out


def flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mapping → ``{"a.b": leaf}``; lists and other values are leaves."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping) and v:
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def format_value(value: Any) -> str:
    """Compact text for a swept value (used in run labels and tables)."""
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple, dict)) or value is None or isinstance(value, bool):
        return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("\n...").strip()
    return str(value)


def value_label(value: Any) -> str:
    """Readable label of a swept value: a section ``{name: biv, eps: 0.5}`` reads ``biv (eps=0.5)``."""
    if isinstance(value, Mapping) and "name" in value:
        rest = {k: v for k, v in flatten({k: v for k, v in value.items() if k != "name"}).items() if v not in (None, {}, [])}
        params = ", ".join(f"{k}={format_value(v)}" for k, v in rest.items())
        return f"{format_value(value['name'])}" + (f" ({params})" if params else "")
    return format_value(value)
