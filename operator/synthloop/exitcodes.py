"""The contract between a failing worker and the Job that runs it: exit code and termination path.

Neutral ground (no imports): the builders put these into every Job (``podFailurePolicy``,
``terminationMessagePath``), the controllers read them back from failed pods, the process-node
agent honours the path, and the workers (``workers/errors.py``) exit and write by them, so no
operator module imports from ``workers/``.
"""

from __future__ import annotations

#: sysexits.h EX_CONFIG: invalid input or config; the Job fails at once (``FailJob``), no retry.
EXIT_INVALID_INPUT = 78
#: Where a container writes its termination message (``terminationMessagePath``). A process
#: node has no mount namespace, so its agent points this env at a per-container file instead.
TERMINATION_PATH_ENV = "SYNTHLOOP_TERMINATION_MESSAGE_PATH"
DEFAULT_TERMINATION_PATH = "/dev/termination-log"
#: What the kubelet keeps of a termination message.
MAX_MESSAGE_BYTES = 4096
