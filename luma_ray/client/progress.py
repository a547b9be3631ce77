"""One job's progress bar on stderr, drawn by ``tqdm``; the clients' ``wait()`` show it.

``JobProgress(job_id, show)`` with ``show=None`` is on only where someone sees it: stderr is a
terminal, or a Jupyter kernel runs (its stderr is no terminal but renders ``\\r`` redraws).
``True`` and ``False`` force it; when off every call is a no-op.
"""

from __future__ import annotations

import sys

from tqdm.std import tqdm  # type: ignore[import-untyped]  # tqdm ships no type hints

__all__ = ["JobProgress", "visible"]

_STEPS = "{desc} {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}]"
_NO_STEPS = "{desc} [{elapsed}]"


def visible() -> bool:
    """True when a progress bar on stderr would be seen: a terminal or a notebook kernel."""
    stream = sys.stderr
    return bool(stream is not None and stream.isatty()) or "ipykernel" in sys.modules


class JobProgress:
    """``<job id> <state>`` and, once the job reports steps, a bar of ``step``/``total``.

    Call :meth:`update` with what the job reports (the HTTP clients do on every event and poll)
    and :meth:`close` at the end, which leaves the last line standing; or use it as a context
    manager. ``show=None`` decides with :func:`visible`.
    """

    def __init__(self, job_id: str, show: bool | None = None) -> None:
        self._id = job_id
        self._bar = tqdm(
            desc=job_id,
            total=None,
            file=sys.stderr,
            disable=not (visible() if show is None else show),
            leave=True,
            dynamic_ncols=True,
            bar_format=_NO_STEPS,
        )

    def update(
        self, state: str | None = None, step: int | None = None, total: int | None = None
    ) -> None:
        """Show the job at ``state``, ``step`` of ``total`` (``total`` 0: no steps known yet);
        what is None stays as last shown (an event stream reports state and steps apart)."""
        if self._bar.disable:
            return
        if state is not None:
            self._bar.set_description_str(f"{self._id} {state}", refresh=False)
        if total is not None:
            self._bar.bar_format = _STEPS if total > 0 else _NO_STEPS
            self._bar.total = total if total > 0 else None
        if step is not None:
            self._bar.n = step
        self._bar.refresh()

    def close(self) -> None:
        """End the line (it stays on screen); later calls do nothing."""
        self._bar.close()

    def __enter__(self) -> JobProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
