"""Sweeps: a base spec and a grid of dotted paths → one spec per point (or a random sample)."""

from __future__ import annotations

import copy
import itertools
import random
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from runspec.spec import RunSpec, SpecError

MAX_RUNS = 500
Scalar = float | int | str | bool | None


class RandomSampling(BaseModel):
    model_config = ConfigDict(extra="forbid")
    budget: int = Field(ge=1, le=MAX_RUNS)
    seed: int = Field(default=0, ge=0, le=2**31 - 1)


class SweepIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    base: RunSpec
    grid: dict[str, list[Scalar | dict[str, Any] | list[Any]]] = Field(default_factory=dict, max_length=16)
    random: RandomSampling | None = None


class SweepError(ValueError):
    def __init__(self, loc: tuple[Any, ...], msg: str) -> None:
        super().__init__(msg)
        self.loc = loc
        self.msg = msg


def _set(doc: dict[str, Any], path: str, value: Any) -> None:
    parts = path.split(".")
    node: Any = doc
    for part in parts[:-1]:
        node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
    last = parts[-1]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value


def grid_points(sweep: SweepIn) -> list[dict[str, Any]]:
    paths = list(sweep.grid)
    for p in paths:
        if not sweep.grid[p]:
            raise SweepError(("body", "grid", p), "a grid axis needs at least one value")
    total = 1
    for p in paths:
        total *= len(sweep.grid[p])
    if sweep.random is None and total > MAX_RUNS:
        raise SweepError(
            ("body", "grid"), f"the grid has {total} points; at most {MAX_RUNS} (use random sampling with a budget)"
        )
    points_made = min(total, sweep.random.budget) if sweep.random is not None else total
    if points_made * sweep.base.repeats > MAX_RUNS:
        raise SweepError(
            ("body", "base", "repeats"),
            f"{points_made} points × repeats {sweep.base.repeats} = {points_made * sweep.base.repeats} runs; "
            f"at most {MAX_RUNS}",
        )
    combos = itertools.product(*(sweep.grid[p] for p in paths))
    points = [dict(zip(paths, c, strict=True)) for c in combos] if total <= 100_000 else []
    if sweep.random is not None:
        rng = random.Random(sweep.random.seed)
        if points:
            points = rng.sample(points, min(sweep.random.budget, len(points)))
        else:
            points = [{p: rng.choice(sweep.grid[p]) for p in paths} for _ in range(sweep.random.budget)]
    return points or [{}]


def _label_value(value: Any) -> str:
    """A grid value as a run name shows it: a list joined by '+' (exports "float16+int8", as the
    form's export sets are written), a number in its shortest form, anything else as text."""
    if isinstance(value, list | tuple):
        return "+".join(_label_value(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def expand(sweep: SweepIn) -> list[tuple[dict[str, Any], RunSpec]]:
    """Every point with its validated spec; SweepError names the first bad axis."""
    base = sweep.base.model_dump(mode="json")
    out = []
    for point in grid_points(sweep):
        doc = copy.deepcopy(base)
        for path, value in point.items():
            try:
                _set(doc, path, value)
            except (KeyError, IndexError, ValueError, TypeError):
                raise SweepError(("body", "grid", path), f"'{path}' is not a field of the spec") from None
        label = ", ".join(f"{p.split('.')[-1]}={_label_value(v)}" for p, v in point.items())
        if label:
            doc["name"] = f"{base['name']} [{label}]"[:200]
        try:
            spec = RunSpec.model_validate(doc)
        except ValidationError as e:
            err = e.errors()[0]
            cause = (err.get("ctx") or {}).get("error")
            parts = [str(x) for x in err["loc"]]
            msg = err["msg"]
            if isinstance(cause, SpecError):  # a rule across fields: its own field and words
                parts, msg = [*parts, *cause.field.split(".")], str(cause)
            loc = ".".join(parts)
            # the grid axis that made the point invalid: the one on the failing field's path, else
            # the only axis there is (a rule across fields, e.g. kind=optimize needs parent_run_id)
            on_path = [p for p in point if loc.startswith(p) or p.startswith(loc)]
            axis = on_path[0] if on_path else next(iter(point)) if len(point) == 1 else loc
            text = msg if msg.startswith(loc) else f"{loc}: {msg}"
            raise SweepError(("body", "grid", axis), text) from None
        out.append((point, spec))
    return out
