from __future__ import annotations

from tests.reliability import figures


def pytest_terminal_summary(terminalreporter) -> None:  # type: ignore[no-untyped-def]
    figures.terminal_summary(terminalreporter)
