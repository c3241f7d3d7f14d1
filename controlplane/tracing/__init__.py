"""A run as one OpenTelemetry trace: the ids of its spans, the sampling decision, the spans
its history implies, and where they are exported (`controlplane.telemetry` emits them)."""
