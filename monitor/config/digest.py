"""A model's config digest: what an evaluation's lineage records of the config it ran with.

The config is normalised before it is hashed: the validated pydantic model, every default
filled in, dumped as JSON with sorted keys and no whitespace. Comments, formatting, key order
and a default written out or left implicit do not change the digest; any value that the
evaluation reads (a threshold, a window, a feature's type) does.
"""

from __future__ import annotations

import hashlib

import orjson

from monitor.config.schema import ModelConfig


def normalised(config: ModelConfig) -> bytes:
    """The canonical bytes of a model's config."""
    return orjson.dumps(config.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS)


def config_digest(config: ModelConfig) -> str:
    """``sha256:`` and the hex SHA-256 of ``normalised(config)``."""
    return "sha256:" + hashlib.sha256(normalised(config)).hexdigest()
