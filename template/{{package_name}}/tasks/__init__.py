"""Background tasks: plain functions declared with ``@task`` or ``@periodic``.

Tasks do not know which tier runs them. Write them idempotent (safe to run twice):
durable tiers deliver at least once. Arguments and results must be JSON-serializable.
"""

import importlib
import pkgutil


def discover() -> None:
    """Import every module of this package so that all tasks are declared."""
    for module_info in pkgutil.walk_packages(__path__, prefix=f"{__name__}."):
        importlib.import_module(module_info.name)
