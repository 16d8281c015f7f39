"""Background tasks: plain functions declared with ``@task`` or ``@periodic``.

Tasks do not know which tier runs them. Write them idempotent (safe to run twice):
durable tiers deliver at least once. Arguments and results must be JSON-serializable.
"""

import importlib
import pkgutil
import time

from tasktier.model import task


def discover() -> None:
    """Import every module of this package so that all tasks are declared."""
    for module_info in pkgutil.walk_packages(__path__, prefix=f"{__name__}."):
        importlib.import_module(module_info.name)


@task(name="bench.noop")
def bench_noop() -> float:
    """Not yours: the benchmark's no-op (``python -m <package>.bench`` measures the queue
    itself with it). Declared here, where every process that runs tasks finds it."""
    return time.time()
