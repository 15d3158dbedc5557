"""Seed groups: runs whose specs differ only by seed (and by labels) are repeats of one recipe.

`group_key` is the identity of a recipe up to its seeds; `seed_repeats` turns a spec with
`repeats: N` into the N specs that are submitted as runs. Pure functions of the spec: the API
stores the key with each run (`runs.group_key`, migration 0011) and the store aggregates the
members of a key (mean and 95 % confidence interval, backend/store/intervals.py).
"""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any

from runspec.spec import RunSpec

# What a group key leaves out of the spec, and why (docs/architecture.md, "Seed groups"):
# - name, tags, notes, experiment: labels; two runs of one recipe may be named or filed apart
#   (a sweep point's repeats carry "[seed=N]" in their names).
# - repeats: how many runs were asked for, not what each run does (a member is stored with 1).
# - control: whether a same-budget control was asked for along with the run (runspec.controls),
#   not what the run does; its controls differ by their techniques and group apart.
# - training.seed: what repeats vary (weight initialisation, shuffling, dropout masks).
# - dataset.seed: the train/validation split's seed; a sweep over it is also a repeat of one
#   recipe, measured over different splits. Repeats keep it fixed (only training.seed moves).
# Everything else (kind, parent and teacher run ids, dataset, model, training, techniques,
# exports, export options, measurement protocol, external) changes what is measured: it stays in.
EXCLUDED_FROM_GROUP_KEY: tuple[tuple[str, ...], ...] = (
    ("name",),
    ("tags",),
    ("notes",),
    ("experiment",),
    ("repeats",),
    ("control",),
    ("training", "seed"),
    ("dataset", "seed"),
)


def group_key(spec: RunSpec | dict[str, Any]) -> str:
    """The seed group of a spec: SHA-256 (64 lowercase hex characters) of its canonical JSON
    (every field, defaults filled in, sorted keys, no spaces) without EXCLUDED_FROM_GROUP_KEY.

    A dict is validated as a RunSpec first, so a stored spec from before a field existed
    hashes like a new spec with that field at its default; a dict that no longer validates
    is hashed as it is (it still groups with identical stored specs). Raises nothing.
    """
    if isinstance(spec, RunSpec):
        doc = spec.model_dump(mode="json")
    else:
        try:
            doc = RunSpec.model_validate(spec).model_dump(mode="json")
        except ValueError:
            doc = copy.deepcopy(spec)
    for path in EXCLUDED_FROM_GROUP_KEY:
        node: Any = doc
        for part in path[:-1]:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(path[-1], None)
    canonical = json.dumps(doc, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def seed_repeats(spec: RunSpec) -> list[RunSpec]:
    """The runs a spec asks for: itself when `repeats` is 1; otherwise `repeats` specs with
    training.seed = seed, seed+1, …, seed+repeats-1, each with repeats 1 (a stored run is one
    run: retrying it makes one run) and " [seed=S]" after its name (cut to 200 characters).
    dataset.seed is not moved: every repeat trains on the same split. All share one group_key."""
    if spec.repeats == 1:
        return [spec]
    out = []
    for i in range(spec.repeats):
        seed = spec.training.seed + i
        training = spec.training.model_copy(update={"seed": seed})
        name = f"{spec.name} [seed={seed}]"[:200]
        out.append(spec.model_copy(update={"training": training, "repeats": 1, "name": name}))
    return out
