"""Step workers end with the run process that started them.

Under the multiprocess executor each step runs in a child process. When the run process is
killed (SIGKILL of ``dagster asset materialize``, an OOM kill), nothing tells a child to stop,
and a conversion would publish its artifact after the run was gone, while the run stays
STARTED. So a step worker watches multiprocessing's parent sentinel (a pipe the run process
holds open; it reads EOF the moment that process dies, whatever killed it) and kills itself
then. Its artifact lock dies with it, and a rerun recovers from staging.

Not ``PR_SET_PDEATHSIG``: under the forkserver the OS parent is the server, which every worker
keeps alive through the fd it inherits, so the kernel's signal would never fire.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading


def die_with_parent() -> bool:
    """In a multiprocessing child, SIGKILL this process when its run process dies; True when
    the watch is on. A no-op in a run's own process (in-process execution, ``dg.materialize``)."""
    parent = multiprocessing.parent_process()
    if parent is None:
        return False

    def watch() -> None:
        parent.join()
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, name="die-with-parent", daemon=True).start()
    return True
