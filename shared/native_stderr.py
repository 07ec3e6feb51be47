"""Lines that native libraries print straight to file descriptor 2, filtered out.

The TFLite runtime prints ``INFO: Created TensorFlow Lite XNNPACK delegate for
CPU.`` to fd 2 (C++ logging, no Python logger, no option or environment variable
turns it off) the first time an interpreter allocates its tensors. While the
block runs, :func:`drop_native_lines` points fd 2 at a temporary file; afterwards
every line that does not match is written to the real stderr, so output of other
threads in that moment (log lines) comes late but is never lost.
(``edge.microphone.quiet_stderr`` drops everything instead: ALSA's probing noise.)
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
from collections.abc import Iterator


@contextlib.contextmanager
def drop_native_lines(pattern: re.Pattern[bytes]) -> Iterator[None]:
    """Hide the lines matching ``pattern`` written to fd 2 inside the block."""
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no fd 2 at all (a daemon): nothing to filter
        yield
        return
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            kept = [line for line in capture.read().splitlines(True) if not pattern.search(line)]
            if kept:
                os.write(2, b"".join(kept))
