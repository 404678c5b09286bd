"""OpenTelemetry tracing through Temporal's interceptor, off unless REFUNDS_OTEL_ENDPOINT is set.

Spans follow a refund across processes: the service's StartWorkflow, the workflow, each activity.
The `otel` extra installs the OpenTelemetry SDK and its OTLP/HTTP exporter.
"""

from __future__ import annotations

import threading

from temporalio.client import Interceptor

from workers.settings import Settings

_configured = threading.Lock()
_provider_set = False


def tracing_interceptors(settings: Settings) -> list[Interceptor]:
    """[TracingInterceptor] exporting to the configured collector, or nothing when tracing is off."""
    global _provider_set
    if not settings.otel_endpoint:
        return []
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from temporalio.contrib.opentelemetry import TracingInterceptor

    with _configured:  # a process has one tracer provider
        if not _provider_set:
            provider = TracerProvider(resource=Resource.create({"service.name": settings.otel_service_name}))
            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=settings.otel_endpoint)))
            trace.set_tracer_provider(provider)
            _provider_set = True
    return [TracingInterceptor()]
