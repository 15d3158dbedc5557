"""Block summaries written by the append path (computed in Python from each batch, merged with
the stored row of a shared block) equal a rebuild from the stored points, on both backends."""

from __future__ import annotations

import math
import random

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.store import metrics
from backend.store import models as m
from backend.store.metrics import Point
from tests.factories import make_run


def _blocks(session: Session, run_id: int) -> list[tuple]:
    t = m.MetricBlock
    rows = session.execute(
        select(
            t.key,
            t.level,
            t.block,
            t.n,
            t.first_step,
            t.first_value,
            t.last_step,
            t.last_value,
            t.min_step,
            t.min_value,
            t.max_step,
            t.max_value,
        )
        .where(t.run_id == run_id)
        .order_by(t.key, t.level, t.block)
    ).all()
    return [tuple(r) for r in rows]


def test_appended_summaries_equal_a_rebuild(session: Session) -> None:
    rng = random.Random(7)
    run = make_run(session, name="a", experiment="e", external=True)
    step = {"loss": 0, "acc": 0, "lr": 0}
    for _ in range(40):
        points = []
        for key in rng.sample(sorted(step), rng.randint(1, 3)):
            for _ in range(rng.choice([1, 3, 17, 90, 700])):
                step[key] += rng.choice([1, 1, 1, 2, 15, 300])
                v = rng.choice([0.5, 0.25, 1.0, math.nan, -math.inf, math.inf, rng.random(), rng.random()])
                points.append(Point(key, step[key], v))  # repeated values: ties go to the earlier step
        rng.shuffle(points)  # a batch need not be ordered
        metrics.log_batch(session, run_id=run.id, points=points)
    appended = _blocks(session, run.id)
    assert len(appended) > 200
    metrics.rebuild_blocks(session, run_id=run.id)
    rebuilt = _blocks(session, run.id)
    assert appended == rebuilt
