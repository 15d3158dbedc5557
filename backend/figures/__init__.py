"""Server-side figures: pure functions from plain rows to Plotly figure dicts.

No database, no FastAPI: the compare route, the HTML report and the tests call these with
plain data. Each figure function returns `fig.to_plotly_json()` (JSON-serializable; NaN and
infinities become null) that the dashboard renders with `Plotly.react(div, data, layout)`.
"""

from backend.figures.confusion import confusion_figure
from backend.figures.latency import latency_figure
from backend.figures.loss import group_loss_figure, loss_figure
from backend.figures.pareto import pareto_flags, pareto_front
from backend.figures.report import report_html
from backend.figures.tradeoff import X_AXES, tradeoff_figure

__all__ = [
    "X_AXES",
    "confusion_figure",
    "group_loss_figure",
    "latency_figure",
    "loss_figure",
    "pareto_flags",
    "pareto_front",
    "report_html",
    "tradeoff_figure",
]
