"""Options for the pytest runs the suite starts in a subprocess (a reader's project).

This virtualenv has schemathesis and hypothesis installed for the suite's own
tests; their pytest plugins load into every pytest process and take about a
second to import (hypothesis alone ~1 s). A user's project has neither, and no
sandboxed run here uses them, so those runs turn both plugins off.
"""

from __future__ import annotations

LEAN = ("-p", "no:schemathesis", "-p", "no:hypothesispytest")
