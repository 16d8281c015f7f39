"""HTTP routes. Every module in this package that defines ``router`` is included.

Add ``routes/orders.py`` with ``router = APIRouter(prefix="/orders")`` and it is
served, without editing ``main.py``.
"""

import importlib
import pkgutil

from fastapi import APIRouter


def all_routers() -> list[APIRouter]:
    routers = []
    for module_info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{module_info.name}")
        router = getattr(module, "router", None)
        if isinstance(router, APIRouter):
            routers.append(router)
    return routers
