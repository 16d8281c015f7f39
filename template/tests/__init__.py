import os

# The tests trace nothing (when the project has tracing.py): no exporter waits on a
# collector that is not there. Set OTEL_SDK_DISABLED=false to trace a test run.
os.environ.setdefault("OTEL_SDK_DISABLED", "true")
