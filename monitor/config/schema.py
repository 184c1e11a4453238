"""The pydantic models of monitor.yaml. Unknown keys are errors everywhere.

``load_config`` in ``loader.py`` is the only reader of YAML; these models only validate data.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, Protocol, TypeVar, get_args
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    ModelWrapValidatorHandler,
    PlainSerializer,
    PlainValidator,
    PrivateAttr,
    SecretStr,
    Tag,
    ValidationInfo,
    field_validator,
    model_validator,
)

from monitor.config.durations import format_duration, parse_duration
from monitor.csv_columns import RECORD_COLUMNS, score_column
from monitor.timestamps import DEFAULT_MAX_FUTURE_SECONDS
from monitor.webhooks.addresses import private_address_reason
from monitor.webhooks.bodies import check as check_template
from monitor.webhooks.signing import key_of

Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
]

#: Model, feature and webhook names become URL segments and Prometheus label values.
Name = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_.\-]{0,127}$")]

#: Every statistic and performance metric a threshold may be set for.
StatisticName = Literal[
    "psi",
    "ks_statistic",
    "ks_pvalue",
    "wasserstein",
    "wasserstein_normalized",
    "jensen_shannon",
    "chi2_pvalue",
    "missing_ratio",
    "drifted_share",
    "accuracy",
    "precision",
    "recall",
    "f1",
    "roc_auc",
    "average_precision",
    "log_loss",
    "mae",
    "rmse",
    "mape",
    "r2",
    "label_coverage",
    "estimated_accuracy",
    # canary against stable (issue 16): ModelConfig.versions
    "canary_psi",
    "canary_accuracy_delta",
    # group fairness (FairnessConfig), one observation per sensitive feature
    "demographic_parity_difference",
    "demographic_parity_ratio",
    "equalized_odds_difference",
    "equalized_odds_ratio",
    "equal_opportunity_difference",
]


def _class_label(value: object) -> str:
    """Class labels are compared as strings; YAML/JSON scalars map the same way on both sides."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int)):
        return str(value)
    raise ValueError("a class label must be a string, an integer or a boolean")


ClassLabel = Annotated[str, BeforeValidator(_class_label)]
#: The longest categorical value a record may carry (``ingest.validate``): a segment value
#: longer than it could never match a record.
MAX_CATEGORY_LENGTH = 256


class _Named(Protocol):
    @property
    def name(self) -> str: ...


_N = TypeVar("_N", bound=_Named)


def _unique_names(items: list[_N], kind: str) -> list[_N]:
    seen: set[str] = set()
    for item in items:
        if item.name in seen:
            raise ValueError(f"{kind} {item.name!r} is listed twice")
        seen.add(item.name)
    return items


class _Strict(BaseModel):
    # the string under each field is its description (the configuration reference in docs/)
    model_config = ConfigDict(
        extra="forbid", frozen=True, populate_by_name=True, use_attribute_docstrings=True
    )


class AuthConfig(_Strict):
    ingest_tokens: list[SecretStr] = []
    """Bearer tokens (at least 16 characters each) that may send predictions, labels and
    CloudEvents."""
    read_tokens: list[SecretStr] = []
    """Bearer tokens that may read: models, drift, performance, alerts, deliveries, exports."""
    admin_tokens: list[SecretStr] = []
    """Bearer tokens that may do everything, reference uploads and evaluations on demand
    included."""
    protect_metrics: bool = False
    """`true`: `/metrics` needs a read or admin token too."""

    @field_validator("ingest_tokens", "read_tokens", "admin_tokens")
    @classmethod
    def _no_empty_tokens(cls, tokens: list[SecretStr]) -> list[SecretStr]:
        for token in tokens:
            if len(token.get_secret_value()) < 16:
                raise ValueError("tokens must be at least 16 characters long")
        return tokens

    @property
    def enabled(self) -> bool:
        return bool(self.ingest_tokens or self.read_tokens or self.admin_tokens)


class CloudEventsConfig(_Strict):
    pair_timeout: Duration = timedelta(seconds=60)
    """How long the first half of a logged inference (request or response) waits for the other;
    then it is deleted and counted in `drift_monitor_cloudevents_unpaired_total`."""


class ServerConfig(_Strict):
    host: str = "127.0.0.1"
    """Address to listen on (`0.0.0.0` inside a container); `--host` overrides it."""
    port: int = Field(8000, ge=1, le=65535)
    """Port to listen on; `--port` overrides it."""
    max_body_bytes: int = Field(10 * 1024 * 1024, ge=1024)
    """Largest request body, in bytes (10 MiB); larger is refused with 413."""
    max_decompressed_bytes: int = Field(100 * 1024 * 1024, ge=1024)
    """Largest body once `Content-Encoding: gzip` is undone, in bytes (100 MiB), over every gzip
    member; 413 above."""
    max_timestamp_skew: Duration = timedelta(seconds=DEFAULT_MAX_FUTURE_SECONDS)
    """How far ahead of the server's clock a record's, a label's or `evaluate?at=`'s time may be;
    422 beyond."""
    body_timeout: Duration = timedelta(seconds=30)
    """The whole body must arrive within this (at most `60s`); 408 and the connection closed
    otherwise."""
    max_concurrent_large_bodies: int = Field(1, ge=1, le=64)
    """Bodies over 1 MiB decompressed that are decoded and stored at once; others wait up to 30 s,
    then 503."""
    max_connections: int = Field(1000, ge=10)
    """Connections and requests at once before uvicorn answers 503 (`text/plain`, uvicorn's own)."""
    auth: AuthConfig = AuthConfig()
    """Optional bearer tokens; when any is set, every `/v1` call needs one."""
    cloudevents: CloudEventsConfig = CloudEventsConfig()
    """Pairing of logged inferences received at `POST /v1/cloudevents`."""

    @field_validator("body_timeout")
    @classmethod
    def _body_timeout_range(cls, value: timedelta) -> timedelta:
        if not timedelta(0) < value <= timedelta(seconds=60):
            raise ValueError("must be more than 0s and at most 60s")
        return value


class StorageConfig(_Strict):
    url: str | None = None
    """SQLAlchemy URL: `sqlite:///path.db` or `postgresql+psycopg://user:pw@host:5432/db`.
    `MONITOR_DATABASE_URL` overrides it; when neither is set, `sqlite:///./monitor.db`."""
    retention: Duration = timedelta(days=7)
    """Raw predictions and labels older than this (by their timestamp) are deleted."""
    retention_check: Duration = timedelta(hours=1)
    """How often the retention sweep runs (it also runs at start)."""

    @field_validator("url")
    @classmethod
    def _known_backend(cls, url: str | None) -> str | None:
        if url is not None and not url.startswith(("sqlite", "postgresql")):
            raise ValueError("must be a sqlite:/// or postgresql+psycopg:// URL")
        return url


class FeatureConfig(_Strict):
    name: Name
    """The feature's key in records: letters, digits, `_ . -`; not starting with `__`."""
    type: Literal["numeric", "categorical"]
    """`numeric` (numbers) or `categorical` (strings, integers or booleans); `null` marks a
    missing value."""

    @field_validator("name")
    @classmethod
    def _not_reserved(cls, name: str) -> str:
        if name.startswith("__"):
            raise ValueError("names starting with __ are reserved (__prediction__, __label__)")
        return name


def _existing_file(path: Path, info: ValidationInfo, what: str) -> Path:
    """``path`` resolved against the config file's folder; it must be a file."""
    base = (info.context or {}).get("base_dir")
    resolved = path if path.is_absolute() or base is None else Path(base) / path
    if not resolved.is_file():
        raise ValueError(f"{what} {str(resolved)!r} does not exist")
    return resolved


class ReferenceConfig(_Strict):
    """Exactly one of: a file, the first N ingested records, or the previous window.

    ``path`` is resolved against the config file's folder, for reading; ``written_path`` is
    the text the config wrote, for showing: the API shows that one, so a reader of the API
    does not learn where the host keeps its files."""

    path: Path | None = None
    """A CSV, JSON or JSONL file of reference records, relative to the config file; loaded at
    start, stored as a new version when its content changed."""
    first_records: int | None = Field(None, ge=1)
    """The first N records ingested for the model, taken once N exist."""
    previous_window: bool = False
    """`true`: the window before the current one."""
    _written_path: str | None = PrivateAttr(None)

    @property
    def written_path(self) -> str | None:
        """``path`` as written in the config (after ``${ENV}`` substitution)."""
        if self._written_path is None and self.path is not None:
            return str(self.path)  # built in code, not from a config file's text
        return self._written_path

    @model_validator(mode="wrap")
    @classmethod
    def _remember_written_path(
        cls, data: Any, handler: ModelWrapValidatorHandler[ReferenceConfig]
    ) -> ReferenceConfig:
        reference = handler(data)
        if isinstance(data, dict) and isinstance(data.get("path"), (str, Path)):
            reference._written_path = str(data["path"])
        return reference

    @field_validator("path")
    @classmethod
    def _resolve_path(cls, path: Path | None, info: ValidationInfo) -> Path | None:
        if path is None:
            return None
        resolved = _existing_file(path, info, "reference file")
        if resolved.suffix.lower() not in (".csv", ".json", ".jsonl", ".ndjson"):
            raise ValueError("reference file must be .csv, .json, .jsonl or .ndjson")
        return resolved

    @model_validator(mode="after")
    def _exactly_one(self) -> ReferenceConfig:
        chosen = [self.path is not None, self.first_records is not None, self.previous_window]
        if sum(chosen) != 1:
            raise ValueError("set exactly one of path, first_records or previous_window: true")
        return self


class WindowConfig(_Strict):
    """Exactly one of: the last ``duration`` of records, or the last ``records`` records."""

    duration: Duration | None = None
    """Predictions with time in `(now - duration, now]`."""
    records: int | None = Field(None, ge=1)
    """The last N records received, whatever their timestamps."""

    @model_validator(mode="after")
    def _exactly_one(self) -> WindowConfig:
        if (self.duration is None) == (self.records is None):
            raise ValueError("set exactly one of duration or records")
        return self


class LevelsConfig(_Strict):
    warning: float | None = None
    """The feature's warning level."""
    critical: float | None = None
    """The feature's critical level."""

    @model_validator(mode="after")
    def _at_least_one(self) -> LevelsConfig:
        if self.warning is None and self.critical is None:
            raise ValueError("set warning, critical or both")
        return self


def _level(value: object) -> float | Literal["auto"]:
    if value == "auto":
        return "auto"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)  # ranges (and NaN) are checked with the levels' order: semantics.py
    raise ValueError(f"input should be a number or auto, got {value!r}")


#: A threshold level: a number, or ``auto`` (derived from the model's false-alarm budget, see
#: ``evaluation.levels``).
Level = Annotated[float | Literal["auto"], PlainValidator(_level)]

#: Statistics whose level may be ``auto``.
#: Why ``auto`` is refused for the statistics that have no no-drift law of their own.
NO_AUTO = {
    "drifted_share": "it counts the other rules' breaches: give those rules auto levels instead",
    "label_coverage": (
        "coverage follows how fast labels arrive, which the reference does not say: set a number"
    ),
    "canary_psi": "it compares two versions' windows, not a window with the reference",
    "canary_accuracy_delta": "it compares two versions' windows, not a window with the reference",
    **dict.fromkeys(
        (
            "demographic_parity_difference",
            "demographic_parity_ratio",
            "equalized_odds_difference",
            "equalized_odds_ratio",
            "equal_opportunity_difference",
        ),
        "a fairness disparity is a policy limit (such as 0.8, the four-fifths rule): set a number",
    ),
}
#: The statistics a level may be ``auto`` for.
AUTO_STATISTICS = tuple(name for name in get_args(StatisticName) if name not in NO_AUTO)
CLASSIFICATION_METRICS = (
    "accuracy",
    "precision",
    "recall",
    "f1",
    "roc_auc",
    "average_precision",
    "log_loss",
    "estimated_accuracy",
)
REGRESSION_METRICS = ("mae", "rmse", "mape", "r2")


class ThresholdConfig(_Strict):
    warning: Level | None = None
    """Warning level: a number, or `auto` (derived from `calibration`)."""
    critical: Level | None = None
    """Critical level: a number, or `auto` (derived from `calibration`)."""
    features: list[str] | None = None
    """Narrow a feature statistic's rule to these features (or `__prediction__`, `__label__`);
    all when unset."""
    overrides: dict[str, LevelsConfig] = {}
    """`{feature: {warning, critical}}`: other levels for a feature (for its status and its
    alerts)."""

    def for_feature(self, feature: str) -> ThresholdConfig | None:
        """The levels that apply to ``feature``; None if the rule does not cover it."""
        if self.features is not None and feature not in self.features:
            return None
        levels = self.overrides.get(feature)
        if levels is None:
            return self
        return ThresholdConfig(warning=levels.warning, critical=levels.critical)

    @property
    def auto(self) -> bool:
        """Whether a level is ``auto``."""
        return "auto" in (self.warning, self.critical)

    @classmethod
    def resolved(cls, warning: float | None, critical: float | None) -> ThresholdConfig:
        """Levels as numbers, either possibly None (an ``auto`` level resolved for one window,
        or that could not be: it breaches nothing), without the check that one is set."""
        return cls.model_construct(warning=warning, critical=critical, features=None, overrides={})

    @model_validator(mode="after")
    def _at_least_one(self) -> ThresholdConfig:
        if self.warning is None and self.critical is None:
            raise ValueError("set warning, critical or both")
        return self


class CalibrationConfig(_Strict):
    false_alarms_per_week: float = Field(gt=0, le=10_000)
    """Expected firing alerts a week over all the model's `auto` rules, on data drawn from the
    reference's distribution (critical; warning levels get ten times as many): the budget
    `auto` levels are derived from."""


class AlertsConfig(_Strict):
    for_: int = Field(1, alias="for", ge=1)
    """Consecutive breaching evaluations before an alert fires (and back inside the thresholds
    before it resolves)."""
    routes: list[Name] = []
    """Names of `webhooks` that receive the model's alerts."""
    correction: Literal["none", "bonferroni", "benjamini-hochberg"] = "none"
    """Multiple-testing correction of the p-value rules across features."""


class DriftConfig(_Strict):
    bins: int = Field(10, ge=2, le=100)
    """PSI quantile bins of numeric features."""
    max_categories: int = Field(50, ge=1, le=10_000)
    """Categories kept by name in a categorical profile; the rest are folded into `__other__`."""
    exact_max_samples: int = Field(100_000, ge=1_000)
    """Above this many records in the window, statistics come from per-bucket histograms."""
    bucket: Duration = timedelta(minutes=1)
    """Time bucket of the histogram path and of the labelled-window summaries."""


# -- model versions (issue 16, item 3) --------------------------------------------------------


class VersionsConfig(_Strict):
    """``versions: {stable: v1, canary: v2}``: the two ``model_version`` values to compare."""

    stable: Annotated[str, Field(min_length=1, max_length=128)]
    """The version in production, the baseline of the comparison."""
    canary: Annotated[str, Field(min_length=1, max_length=128)]
    """The version being rolled out, compared with the stable one."""

    @model_validator(mode="after")
    def _distinct(self) -> VersionsConfig:
        if self.stable == self.canary:
            raise ValueError("stable and canary must be two different versions")
        return self


#: The tags of ``versions``'s two forms. pydantic puts the tag in an error's path
#: (``versions.compare``); the loader leaves it out, so the error names the key as written.
VERSIONS_FORMS = ("{stable, canary}", "compare")


def _versions_form(value: object) -> str | None:
    """Which form a ``versions`` value is written in: one error from that form only, not one
    from each member of the union."""
    if isinstance(value, str):
        return VERSIONS_FORMS[1]
    if isinstance(value, dict | VersionsConfig):
        return VERSIONS_FORMS[0]
    return None


Versions = Annotated[
    Annotated[VersionsConfig, Tag(VERSIONS_FORMS[0])]
    | Annotated[Literal["compare"], Tag(VERSIONS_FORMS[1])],
    Discriminator(
        _versions_form,
        custom_error_type="versions_form",
        custom_error_message="must be compare or {stable: <version>, canary: <version>}",
    ),
]


class PerformanceConfig(_Strict):
    window_by: Literal["prediction_time", "label_time"] = "prediction_time"
    """Select a window's labelled predictions by their prediction time or their label time."""


# --- segments and fairness (monitor.evaluation.groups) ---------------------------------------

#: Fairness disparities a threshold may be set for; they need ``fairness:``.
FAIRNESS_STATISTICS = (
    "demographic_parity_difference",
    "demographic_parity_ratio",
    "equalized_odds_difference",
    "equalized_odds_ratio",
    "equal_opportunity_difference",
)


#: Canary against stable statistics: the whole model's versions compared, never a segment's.
CANARY_STATISTICS = ("canary_psi", "canary_accuracy_delta")


class SegmentConfig(_Strict):
    """Drift and performance per value of a categorical feature; values outside ``values``
    (or, without it, outside the reference's categories) are counted as ``__other__``."""

    name: Name
    """The segment's name: the `segment` label of its metrics."""
    feature: Name
    """The categorical feature whose values make the segment's groups."""
    values: list[ClassLabel] | None = Field(None, min_length=1, max_length=1_000)
    """The values evaluated one by one, the rest as `__other__`; unset, the reference's
    categories (refused above `drift.max_categories` of them)."""
    thresholds: dict[StatisticName, ThresholdConfig] = {}
    """Levels replacing the model's, statistic by statistic, for this segment (numbers only)."""
    min_samples: int | None = Field(None, ge=1)
    """Fewer records (labelled ones for performance) in a group: `insufficient`; unset, the
    model's."""

    @field_validator("values")
    @classmethod
    def _distinct(cls, values: list[str] | None) -> list[str] | None:
        if values is not None and len(set(values)) != len(values):
            raise ValueError("values must be distinct")
        if values is not None and "__other__" in values:
            raise ValueError("__other__ is the bucket of the values not listed")
        for value in values or ():
            if len(value) > MAX_CATEGORY_LENGTH or "\x00" in value:
                raise ValueError(
                    f"{value[:40]!r}... can never match a record: a category holds at most"
                    f" {MAX_CATEGORY_LENGTH} characters and no NUL"
                    if len(value) > MAX_CATEGORY_LENGTH
                    else f"{value!r} can never match a record: a category holds no NUL"
                )
        return values


class FairnessConfig(_Strict):
    """Group fairness of a classifier's ``positive`` decision across each sensitive feature."""

    sensitive: list[Name] = Field(min_length=1)
    """The categorical features whose groups are compared."""
    positive: ClassLabel
    """The class that is the favourable decision (one of `classes`): a selected prediction."""


class ModelConfig(_Strict):
    name: Name
    """Letters, digits, `_ . -`; used in URLs and as the `model` metric label."""
    task: Literal["classification", "regression"]
    """What the model predicts: a class or a number."""
    classes: list[ClassLabel] | None = None
    """Classification only, and required there: every class label the model outputs (compared as
    strings)."""
    features: list[FeatureConfig] = Field(min_length=1)
    """Every input the model logs (at least one); each record carries every one."""
    reference: ReferenceConfig | None = None
    """What no drift looks like: exactly one of `path`, `first_records`, `previous_window`;
    unset, upload one with `PUT /v1/models/{model}/reference`."""
    window: WindowConfig = WindowConfig(duration=timedelta(hours=1))
    """The current window, exactly one of `duration` and `records`; drift and performance use
    the same one."""
    schedule: Duration = timedelta(minutes=1)
    """How often the model is evaluated."""
    min_samples: int = Field(100, ge=1)
    """Fewer samples than this: a statistic is reported `insufficient`."""
    thresholds: dict[StatisticName, ThresholdConfig] = {}
    """`statistic: {warning, critical}` (at least one level); each is an alert rule."""
    calibration: CalibrationConfig | None = None
    """The false-alarm budget `auto` levels are derived from; unset, no level may be `auto`."""
    alerts: AlertsConfig = AlertsConfig()
    """How threshold breaches become alerts, and where they are sent."""
    drift: DriftConfig = DriftConfig()
    """Tuning of the drift statistics."""
    performance: PerformanceConfig = PerformanceConfig()
    """Which labelled predictions a window holds."""
    inference_service: str | None = None
    """The KServe InferenceService / SeldonDeployment whose logged CloudEvents are this model's;
    unset, the model's name."""
    versions: Versions | None = None
    """Canary against stable: `{stable, canary}` names the two `model_version` values to compare;
    `compare` takes the window's two most frequent (the more frequent as stable)."""
    segments: list[SegmentConfig] = []
    """Drift and performance per value of a categorical feature (see Segments and fairness)."""
    fairness: FairnessConfig | None = None
    """Classification only: group fairness of the `positive` class across sensitive features."""

    @field_validator("features")
    @classmethod
    def _unique_features(cls, features: list[FeatureConfig]) -> list[FeatureConfig]:
        return _unique_names(features, "feature")

    def thresholds_for(self, feature: str) -> dict[StatisticName, ThresholdConfig]:
        """The rules that cover ``feature``, each with its levels for it."""
        found = {}
        for statistic, threshold in self.thresholds.items():
            levels = threshold.for_feature(feature)
            if levels is not None:
                found[statistic] = levels
        return found

    @model_validator(mode="after")
    def _auto_levels(self) -> ModelConfig:
        for statistic, threshold in self.thresholds.items():
            if not threshold.auto:
                continue
            if statistic in NO_AUTO:
                raise ValueError(
                    f"thresholds.{statistic}: auto is not available for {statistic}:"
                    f" {NO_AUTO[statistic]}"
                )
            if statistic in CLASSIFICATION_METRICS and self.task != "classification":
                raise ValueError(
                    f"thresholds.{statistic}: auto {statistic} is for task: classification"
                )
            if statistic in REGRESSION_METRICS and self.task != "regression":
                raise ValueError(
                    f"thresholds.{statistic}: auto {statistic} is for task: regression"
                )
            if self.calibration is None:
                raise ValueError(
                    f"thresholds.{statistic}: auto needs calibration: {{false_alarms_per_week: N}}"
                )
            if statistic.endswith("_pvalue") and self.alerts.correction != "none":
                raise ValueError(
                    f"thresholds.{statistic}: auto p-value levels already account for every test;"
                    " set alerts.correction: none"
                )
        return self

    @model_validator(mode="after")
    def _classes_match_task(self) -> ModelConfig:
        if self.task == "classification":
            if not self.classes or len(self.classes) < 2:
                raise ValueError("a classification model needs classes: [at least two labels]")
            if len(set(self.classes)) != len(self.classes):
                raise ValueError("classes must be distinct")
        elif self.classes is not None:
            raise ValueError("classes is only for task: classification")
        return self

    @model_validator(mode="after")
    def _no_feature_named_like_a_score_column(self) -> ModelConfig:
        columns = {score_column(label): label for label in self.classes or ()}
        for feature in self.features:
            if feature.name in RECORD_COLUMNS:
                raise ValueError(
                    f"feature {feature.name!r} is named like a column of the records' CSV"
                    f" ({', '.join(RECORD_COLUMNS)}: export, replay, reference); rename the"
                    " feature"
                )
            if feature.name in columns:
                raise ValueError(
                    f"feature {feature.name!r} is named like the CSV column of the scores of"
                    f" class {columns[feature.name]!r} (export, replay, reference); rename the"
                    " feature"
                )
        return self


class WebhookConfig(_Strict):
    name: Name
    """The route's name, listed in a model's `alerts.routes`."""
    # declared before url, so that url's check can see it
    allow_private: bool = False
    """`true` allows loopback, private, link-local and other special-purpose destinations."""
    url: Annotated[str, Field(pattern=r"^https?://[^\s/]+")]
    """Where events are POSTed (`http://` or `https://`)."""
    secret: SecretStr | None = None
    """Signing key: `whsec_<base64 key>` (Standard Webhooks) or any other string (its UTF-8
    bytes); unset, deliveries are unsigned."""
    timeout: Duration = timedelta(seconds=10)
    """Time allowed for each delivery attempt."""
    max_retry: Duration = timedelta(hours=24)
    """Retry a delivery this long after its event was queued, then give it up as failed."""
    cooldown: Duration | None = None
    """After an alert fires to this route, the same alert firing again within this long is not
    sent to it (recorded in the history all the same): a flapping rule cannot flood it."""
    retrain: bool = False
    """A retraining trigger: sent only the firing that starts each episode of the model being
    in alert (no other alert of the model firing), never an escalation or a resolution; its
    `cooldown` then counts per model."""
    format: Literal["event", "alertmanager", "template"] = "event"
    """The body: the event itself, an Alertmanager (v4) payload, or a `template` file's."""
    template: Path | None = None
    """With `format: template`: a JSON file with `${name}` placeholders, relative to the config
    file."""
    headers: dict[str, SecretStr] = {}
    """Extra request headers, e.g. an API token (use `${ENV}`); never logged. The `webhook-*`,
    content and `Host` headers are drift-monitor's own."""

    @field_validator("template")
    @classmethod
    def _template_file(cls, path: Path | None, info: ValidationInfo) -> Path | None:
        if path is None:
            return None
        resolved = _existing_file(path, info, "template file")
        check_template(resolved.read_text())
        return resolved

    @field_validator("headers")
    @classmethod
    def _own_headers(cls, headers: dict[str, SecretStr]) -> dict[str, SecretStr]:
        for name in headers:
            lowered = name.lower()
            if lowered.startswith("webhook-") or lowered in ("content-type", "content-length"):
                raise ValueError(f"{name}: set by drift-monitor itself")
            if lowered == "host":  # the request goes to the checked address, for the URL's host
                raise ValueError(f"{name}: set by drift-monitor itself, from the url")
        return headers

    @model_validator(mode="after")
    def _template_with_format(self) -> WebhookConfig:
        if (self.format == "template") != (self.template is not None):
            raise ValueError("format: template and a template file go together")
        return self

    @field_validator("url")
    @classmethod
    def _public_unless_allowed(cls, url: str, info: ValidationInfo) -> str:
        if not info.data.get("allow_private", False):
            reason = private_address_reason(urlsplit(url).hostname or "")
            if reason is not None:
                raise ValueError(
                    f"{reason}: refused unless the webhook says allow_private: true (as a "
                    "sidecar posting to a receiver on this host or network must)"
                )
        return url

    @field_validator("secret")
    @classmethod
    def _secret_form(cls, secret: SecretStr | None) -> SecretStr | None:
        if secret is not None:
            key_of(secret.get_secret_value())  # a ValueError names the problem, not the value
        return secret


class Config(_Strict):
    server: ServerConfig = ServerConfig()
    """The HTTP server: address, body limits, tokens."""
    storage: StorageConfig = StorageConfig()
    """The database and the retention of raw records."""
    models: list[ModelConfig] = Field(min_length=1)
    """The monitored models (at least one)."""
    webhooks: list[WebhookConfig] = []
    """Routes alert events are POSTed to."""

    @field_validator("models")
    @classmethod
    def _unique_models(cls, models: list[ModelConfig]) -> list[ModelConfig]:
        return _unique_names(models, "model")

    @field_validator("webhooks")
    @classmethod
    def _unique_webhooks(cls, webhooks: list[WebhookConfig]) -> list[WebhookConfig]:
        return _unique_names(webhooks, "webhook")

    def model(self, name: str) -> ModelConfig | None:
        for model in self.models:
            if model.name == name:
                return model
        return None
