"""Clean end of a multi-process run: tear the process group down while the interpreter can still run its threads."""

from __future__ import annotations

import gc


def shutdown_distributed() -> None:
    """Destroy the default process group and free it now, before the interpreter's shutdown.

    ``destroy_process_group`` alone only drops torch's own references: a wrapped model (the DDP ``Reducer``) still holds
    the gloo group, and a trainer sits in reference cycles, so the group was freed by the interpreter's final garbage
    collection. Its ``pt_gloo_runloop`` threads were alive until then, and one that was releasing a finished collective
    (an all-gather's output tensors, whose Python objects it must decref) asks for the GIL while the interpreter is
    finalizing; CPython then ends that thread with ``pthread_exit``, whose forced unwind crosses a ``noexcept`` C++
    destructor: "terminate called without an active exception", SIGABRT, exit code -6 after a complete run.

    Call it after the last reference to the trainer and model is dropped (e.g. when ``main()`` has returned): the
    collection below frees the group, whose destructor joins its worker threads while the interpreter is still alive.
    """
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
    gc.collect()
