"""Per-request state shared by the tasks of one search (a ContextVar cannot be pickled with a
deployment class, so it lives in this module and is reached through it)."""

from __future__ import annotations

import contextvars

# Stage calls repeated for the current request: a one-element list shared by its tasks.
stage_retries: contextvars.ContextVar[list[int] | None] = contextvars.ContextVar("llasa_stage_retries", default=None)

# The current request's absolute deadline (time.time() seconds), or None: every stage call's timeout
# is what it leaves.
deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar("llasa_deadline", default=None)


class DeadlineExceeded(TimeoutError):
    """The request's deadline passed: its work is dropped, and the client gets DEADLINE_EXCEEDED."""
