"""monitor.yaml: its models (``schema``) and its only reader (``load_config``)."""

from __future__ import annotations

from monitor.config.durations import format_duration, parse_duration
from monitor.config.loader import load_config, parse_config
from monitor.config.schema import (
    AuthConfig,
    Config,
    FeatureConfig,
    ModelConfig,
    ReferenceConfig,
    ServerConfig,
    StorageConfig,
    ThresholdConfig,
    WebhookConfig,
    WindowConfig,
)

__all__ = [
    "AuthConfig",
    "Config",
    "FeatureConfig",
    "ModelConfig",
    "ReferenceConfig",
    "ServerConfig",
    "StorageConfig",
    "ThresholdConfig",
    "WebhookConfig",
    "WindowConfig",
    "format_duration",
    "load_config",
    "parse_config",
    "parse_duration",
]
