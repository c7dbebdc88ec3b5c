"""Grid specifications: ranges, lists, YAML values, errors naming the flag; nested-dict helpers."""

from __future__ import annotations

import pytest

from hetreg.experiments.grid import (
    GridAxis,
    expand_grid,
    flatten,
    format_value,
    get_dotted,
    parse_assignment,
    parse_grid,
    parse_grid_spec,
    set_dotted,
    split_items,
    value_label,
)


def test_integer_range_is_inclusive() -> None:
    axis = parse_grid_spec("seed=0-9")
    assert axis == GridAxis("seed", tuple(range(10)))
    assert parse_grid_spec("seed=3-3").values == (3,)


def test_list_of_names_and_mixed_items() -> None:
    assert parse_grid_spec("loss.name=mse,biv,iv").values == ("mse", "biv", "iv")
    assert parse_grid_spec("seed=0-2,10,20-21").values == (0, 1, 2, 10, 20, 21)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1e-3", 0.001),  # YAML 1.1 would keep this a string
        ("0.5", 0.5),
        ("-2", -2),
        ("true", True),
        ("null", None),
        ("auto", "auto"),
        ("[64, 64]", [64, 64]),
        ("{name: biv, eps: 0.5}", {"name": "biv", "eps": 0.5}),
        ('"a,b"', "a,b"),
    ],
)
def test_yaml_values(text: str, expected: object) -> None:
    assert parse_grid_spec(f"k={text}").values == (expected,)
    assert type(parse_grid_spec(f"k={text}").values[0]) is type(expected)


def test_commas_inside_brackets_braces_and_quotes_do_not_split() -> None:
    spec = "model.options.hidden=[64,64],[128]"
    assert parse_grid_spec(spec).values == ([64, 64], [128])
    sections = parse_grid_spec("loss={name: mse},{name: biv, eps: 0.5}").values
    assert sections == ({"name": "mse"}, {"name": "biv", "eps": 0.5})
    assert split_items("'a,b',c") == ["'a,b'", "c"]


def test_negative_single_values_are_not_ranges() -> None:
    assert parse_grid_spec("x=-1,-2").values == (-1, -2)
    assert parse_grid_spec("x=-3-0").values == (-3, -2, -1, 0)


def test_true_and_one_are_different_values() -> None:
    assert parse_grid_spec("x=1,true").values == (1, True)


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("seed", "expected key=v1,v2"),
        ("=1,2", "not a dotted configuration key"),
        ("loss..eps=1", "not a dotted configuration key"),
        ("1x=1", "not a dotted configuration key"),
        ("seed=", "no values after '='"),
        ("seed=1,,2", "empty value between commas"),
        ("seed=9-0", "range '9-0' is decreasing"),
        ("seed=0-1000000", "more than"),
        ("seed=1,2,1", "appears twice"),
        ("seed=0-3,2", "appears twice"),
        ("x=[1,2", "cannot parse"),
    ],
)
def test_bad_specs_name_the_flag(spec: str, fragment: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_grid_spec(spec)
    message = str(info.value)
    assert message.startswith(f"--grid {spec!r}")
    assert fragment in message


def test_flag_name_is_configurable() -> None:
    with pytest.raises(ValueError, match=r"^--sweep 'x'"):
        parse_grid_spec("x", flag="--sweep")


def test_same_key_twice_and_overlapping_keys_are_refused() -> None:
    with pytest.raises(ValueError, match="'seed' is given more than once"):
        parse_grid(["seed=0-1", "seed=2"])
    with pytest.raises(ValueError, match="overlap"):
        parse_grid(["loss={name: mse}", "loss.eps=0.1"])


def test_expand_grid_is_the_product_last_axis_fastest() -> None:
    axes = parse_grid(["loss.name=mse,biv", "seed=0-2"])
    points = expand_grid(axes)
    assert len(points) == 6
    assert points[:3] == [{"loss.name": "mse", "seed": s} for s in range(3)]
    assert points[3] == {"loss.name": "biv", "seed": 0}
    assert expand_grid(()) == [{}]


def test_parse_assignment() -> None:
    assert parse_assignment("loss.eps=1e-2") == ("loss.eps", 0.01)
    with pytest.raises(ValueError, match=r"^--set 'loss.eps': expected key=value"):
        parse_assignment("loss.eps")


def test_dotted_helpers() -> None:
    base = {"loss": {"name": "mse"}, "seed": 1}
    new = set_dotted(base, "loss.eps", 0.5)
    assert new == {"loss": {"name": "mse", "eps": 0.5}, "seed": 1}
    assert base == {"loss": {"name": "mse"}, "seed": 1}  # not modified in place
    assert set_dotted({}, "a.b.c", 1) == {"a": {"b": {"c": 1}}}
    with pytest.raises(ValueError, match="'seed' is 1, not a section"):
        set_dotted(base, "seed.x", 2)
    assert get_dotted(new, "loss.eps") == 0.5
    assert get_dotted(new, "loss.missing", "d") == "d"
    assert get_dotted(new, "seed.x") is None
    assert flatten({"a": {"b": 1, "c": [1, 2]}, "d": {}}) == {"a.b": 1, "a.c": [1, 2], "d": {}}


def test_labels() -> None:
    assert format_value(0.1) == "0.1"
    assert format_value(None) == "null"
    assert format_value(True) == "true"
    assert format_value([64, 64]) == "[64, 64]"
    assert value_label({"name": "biv", "eps": 0.5, "threshold": None}) == "biv (eps=0.5)"
    assert value_label({"name": "mse"}) == "mse"
    assert value_label("mse") == "mse"
