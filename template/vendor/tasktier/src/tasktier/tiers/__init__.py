"""The tiers: where jobs wait and run (in process, RQ, Celery)."""
