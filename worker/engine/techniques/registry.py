"""Which `Technique` runs each technique spec: a table keyed by the spec's type.

This table is the one place the engine names its techniques (as tfmot's prune registry is
the one table of prunable layers). Adding a technique: its spec in runspec/spec.py (a member
of the `Technique` union), its module here beside the others, one line below.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType

from pydantic import BaseModel

from worker.engine.techniques.base import Technique
from worker.engine.techniques.clustering import Clustering
from worker.engine.techniques.distillation import Distillation
from worker.engine.techniques.fine_tuning import PlainFineTuning
from worker.engine.techniques.pruning import Pruning
from worker.engine.techniques.qat import QAT


class UnknownTechnique(LookupError):
    """Raised for a technique spec whose type no technique is registered for."""


def _by_spec_type(techniques: Iterable[Technique]) -> Mapping[type[BaseModel], Technique]:
    table: dict[type[BaseModel], Technique] = {}
    for technique in techniques:
        if technique.spec_type in table:
            raise ValueError(
                f"two techniques registered for {technique.spec_type.__name__}: "
                f"{type(table[technique.spec_type]).__name__} and {type(technique).__name__}"
            )
        table[technique.spec_type] = technique
    return MappingProxyType(table)


REGISTRY: Mapping[type[BaseModel], Technique] = _by_spec_type(
    [
        Distillation(),
        Pruning(),
        Clustering(),
        QAT(),
        PlainFineTuning(),
    ]
)


def technique_for(spec: BaseModel) -> Technique:
    """The technique that runs `spec` (an entry of `RunSpec.techniques`), looked up by the
    spec's exact type. Raises UnknownTechnique naming the type and the registered ones."""
    try:
        return REGISTRY[type(spec)]
    except KeyError:
        known = ", ".join(sorted(t.__name__ for t in REGISTRY))
        raise UnknownTechnique(f"no technique is registered for {type(spec).__name__} (registered: {known})") from None
