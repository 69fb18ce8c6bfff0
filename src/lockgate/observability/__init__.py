"""Observability: traces (the tracer, the OpenTelemetry side, the exporter process) and metrics."""
