"""How a training process ends: a cancel unwinds it like Ctrl-C, and it never outlives the
gateway that started it."""

from __future__ import annotations

import os
import signal
import threading
import time


def cancel_on_sigterm() -> None:
    """SIGTERM (a cancel from the gateway) unwinds like Ctrl-C: the job ends `cancelled`."""

    def handler(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


GATEWAY_PID_ENV = "FLYWHEEL_GATEWAY_PID"  # set by the gateway on the jobs it starts


def stop_with_gateway() -> None:
    """A job the gateway started ends when the gateway does, even by `kill -9`: a watcher
    thread sees its parent change (it is re-parented) and cancels the job as a cancel would
    (a rank under `accelerate launch` watches the launcher; a gateway restarted after a crash
    stops whatever is left of the job's process group).
    (Not PR_SET_PDEATHSIG: that follows the thread that started the child, and the gateway
    starts jobs from a worker thread, which may end long before the job.)"""
    if not os.environ.get(GATEWAY_PID_ENV):
        return
    parent = os.getppid()  # the gateway, or under `accelerate launch` the launcher

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, daemon=True, name="stop-with-gateway").start()
