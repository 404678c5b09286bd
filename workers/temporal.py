"""Connecting to Temporal with the data converter every process must share."""

from __future__ import annotations

import dataclasses

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from workers.codec import EncryptionCodec, parse_keys
from workers.settings import Settings
from workers.tracing import tracing_interceptors


def metrics_runtime(port: int, host: str = "127.0.0.1") -> Runtime:
    """A Temporal runtime whose SDK metrics (task latencies, slots, polls) Prometheus scrapes on
    `host:port` at /metrics."""
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=address)))


def data_converter(settings: Settings) -> DataConverter:
    """Pydantic payloads, encrypted when payload keys are configured."""
    keys = parse_keys(settings.payload_keys)
    if not keys:
        return pydantic_data_converter
    return dataclasses.replace(pydantic_data_converter, payload_codec=EncryptionCodec(keys))


async def connect(settings: Settings, runtime: Runtime | None = None) -> Client:
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=data_converter(settings),
        runtime=runtime,
        interceptors=tracing_interceptors(settings),
    )
