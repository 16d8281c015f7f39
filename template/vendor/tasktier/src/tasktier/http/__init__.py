"""The API half: the app (:func:`create_app`), who may act on jobs (:mod:`.access`), and
the job, status, schedule, health and metrics routes."""

from ..tier import Tier, TierMetrics
from .access import UNAUTHORIZED, OperatorOnly, require_operator, status_url
from .app import create_app

__all__ = [
    "UNAUTHORIZED",
    "OperatorOnly",
    "Tier",
    "TierMetrics",
    "create_app",
    "require_operator",
    "status_url",
]
