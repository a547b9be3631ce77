"""Shared test settings. Unit and sim tests must never start Ray (STYLE.md, Tests)."""
