"""The grid service built from the application context (the paper-evaluation recorder is wired by `create_app`)."""

from __future__ import annotations

from litestar.datastructures import State
from litestar.di import NamedDependency

from gateway.context import AppContext
from gateway.grid.services import EvaluationRecorder, GridService

#: Where `create_app` puts the evaluation recorder (tracking's) for the grid domain, on ``app.state``.
RECORDER_KEY = "grid_evaluation_recorder"


def provide_grid(context: NamedDependency[AppContext], state: State) -> GridService:
    recorder: EvaluationRecorder | None = state.get(RECORDER_KEY)
    return GridService(
        database=context.database,
        calendar=context.calendar,
        catalog=context.catalog,
        cipher=context.cipher,
        certificates=context.certificates,
        evaluations=recorder,
    )


__all__ = ["RECORDER_KEY", "provide_grid"]
