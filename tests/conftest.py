"""Shared test settings. Unit and sim tests must never start Ray (docs/architecture.md, Tests).

Ray reads ``RAY_AUTH_MODE`` when it is first imported, and the integration session's driver
joins its multi-node cluster by address, which needs token auth: set it before any test module
imports Ray.
"""

import os

os.environ.setdefault("RAY_AUTH_MODE", "token")
