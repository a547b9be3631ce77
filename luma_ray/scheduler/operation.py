"""The base of every scheduler operation (``protocol`` lists them all and re-exports this).

An op names the service method that answers it and carries that method's keyword arguments
as its fields (docs/architecture.md). Nothing here imports Ray.
"""

from __future__ import annotations

from dataclasses import fields
from typing import ClassVar, Generic, TypeVar

R_co = TypeVar("R_co", covariant=True)


class Op(Generic[R_co]):
    """One call to the scheduler, answered by the service method named ``method`` with the
    op's fields as keyword arguments. ``R_co`` is the answer's type."""

    method: ClassVar[str]
    wakes_pulls: ClassVar[bool] = False
    """After it runs, pulls waiting for work look again (new work, or a freed limit)."""

    def arguments(self) -> dict[str, object]:
        return {f.name: getattr(self, f.name) for f in fields(self)}  # type: ignore[arg-type]

    def safe_to_retry(self) -> Op[R_co]:
        """This op in a form that may be sent twice (a call may land and its answer be lost)."""
        return self
