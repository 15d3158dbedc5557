"""What TensorFlow's C++ core prints past Python (at the process's stderr file descriptor), kept
out of a worker's output when it is known chatter, passed on unchanged otherwise (issue 16: a
run's log says what happened in one line per event; the terminal carries no library noise).

Captured with wurlitzer (https://github.com/minrk/wurlitzer), which redirects file descriptors 1
and 2 into pipes read by a thread: the C++ core writes there directly, so neither sys.stderr nor
TF_CPP_MIN_LOG_LEVEL reaches it (absl prints everything before `absl::InitializeLog()`).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from wurlitzer import pipes

T = TypeVar("T")

# Printed on every int8 conversion by the MLIR quantizer, whatever the log level.
CONVERTER_CHATTER = (re.compile(r"^fully_quantize: \d+, inference_type: \d+"),)
# Printed once when TensorFlow is imported: absl's preamble and INFO lines (oneDNN on, no CUDA
# drivers). Errors (E…) and warnings (W…) are kept: a failed cuInit on a GPU machine matters.
IMPORT_CHATTER = (
    re.compile(r"^WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR$"),
    re.compile(r"^I\d{4} [\d:.]+ +\d+ (port|cudart_stub|cpu_feature_guard)\.cc:\d+\] "),
    # cpu_feature_guard's second line
    re.compile(r"^To enable the following instructions: .*rebuild TensorFlow with the appropriate compiler flags\.$"),
)
# Printed by LiteRT when an interpreter's tensors are allocated: the default CPU delegate, every time.
INTERPRETER_CHATTER = (re.compile(r"^INFO: Created TensorFlow Lite XNNPACK delegate for CPU\.$"),)


def quietly(call: Callable[[], T], chatter: Iterable[re.Pattern[str]]) -> T:
    """`call()` with the C-level output printed meanwhile captured; the lines matching
    `chatter` are dropped and the rest written to stderr once it returns or raises."""
    failure: BaseException | None = None
    result: Any = None
    with pipes() as (out, err):
        try:
            result = call()
        except BaseException as e:  # re-raised once the captured output is passed on
            failure = e
    forward_output(out.read() + err.read(), chatter)
    if failure is not None:
        raise failure
    return result  # type: ignore[no-any-return]


def forward_output(text: str, chatter: Iterable[re.Pattern[str]], stream: Any = None) -> None:
    """Write the non-blank lines of `text` that match none of `chatter` to `stream` (stderr)."""
    patterns = tuple(chatter)
    kept = [line for line in text.splitlines() if line.strip() and not any(p.match(line) for p in patterns)]
    if kept:
        print("\n".join(kept), file=stream or sys.stderr, flush=True)
