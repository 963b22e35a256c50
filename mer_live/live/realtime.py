"""Real-time scheduling for the threads on the audio path, where the operating system allows it.

On a show machine the visuals and lighting software load every core. A normal-priority thread
that wakes for a hop boundary then waits behind them for the scheduler (several milliseconds on
a busy Linux box), which is most of mer-live's latency beyond the hop. ``promote`` moves the
calling thread to ``SCHED_FIFO`` (Linux), as audio servers and DAWs do for their audio threads.

It needs permission: root, ``CAP_SYS_NICE``, or an rtprio limit (``ulimit -r``, ``@audio - rtprio
95`` in ``/etc/security/limits.conf`` as JACK and PipeWire set up). Without it the thread keeps its
normal priority and the caller says so once. The threads promoted sleep between hops, and Linux
caps real-time threads at 95 % of each second by default (``sched_rt_runtime_us``), so a bug that
spins cannot freeze the machine.
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)

#: below JACK/PipeWire's audio threads (~88-95), above everything at normal priority
DEFAULT_PRIORITY = 40


def promote(priority: int = DEFAULT_PRIORITY) -> str | None:
    """Give the CALLING thread ``SCHED_FIFO`` at ``priority`` (1..99).

    Returns None on success, else one line saying why not (the thread keeps running as it was).
    """
    if not 1 <= priority <= 99:
        raise ValueError(f"real-time priority must be in 1..99, got {priority}")
    setter = getattr(os, "sched_setscheduler", None)
    if setter is None:
        return "real-time scheduling is not available on this OS; running at normal priority"
    try:
        setter(0, os.SCHED_FIFO, os.sched_param(priority))  # 0: the calling thread (Linux)
    except (OSError, ValueError) as e:
        why = getattr(e, "strerror", None) or str(e)
        return (f"real-time scheduling refused ({why}); running at normal priority "
                "(allow it with an rtprio limit, e.g. '@audio - rtprio 95' in /etc/security/limits.conf)")
    return None


def promote_or_warn(who: str, priority: int = DEFAULT_PRIORITY) -> bool:
    """``promote`` the calling thread; on refusal log one warning naming ``who``. True if promoted."""
    why = promote(priority)
    if why:
        log.warning("%s: %s", who, why)
    return why is None


def is_realtime() -> bool:
    """Whether the calling thread runs under ``SCHED_FIFO`` or ``SCHED_RR``."""
    getter = getattr(os, "sched_getscheduler", None)
    if getter is None:
        return False
    return getter(0) in (os.SCHED_FIFO, os.SCHED_RR)
