"""Typed run configuration: pydantic sections, TOML/YAML/JSON files, ``--set a.b=value`` overrides.

Every error is reported as one line per problem with its dotted path and reason
(``trainer.epochs: Input should be a valid integer, got 'abc'``), never as a pydantic dump.
"""

from __future__ import annotations

import copy
import difflib
import json
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt, ValidationError, field_validator

from genframe.contracts.errors import ConfigError
from genframe.util.deprecation import move_setting
from genframe.util.shares import StepsOrShare


class Section(BaseModel):
    """Base for config sections: unknown keys are errors, assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)  # no inf/nan rates


class DataConfig(Section):
    name: str = Field("mnist", description="Registered dataset name (see `genframe plugins`).")
    root: str | None = Field(
        None, description="Data directory; default $GENFRAME_DATA_DIR, then ~/.cache/genframe/datasets."
    )
    download: bool = Field(True, description="Download missing files from the public mirrors.")
    limit: PositiveInt | None = Field(None, description="Use only the first N examples of each split (smoke runs).")
    path: str | None = Field(
        None, description="A folder or file of your own data, for datasets that read one (imagefolder, tensorfile)."
    )
    size: PositiveInt | None = Field(
        None, description="Resize images so the shorter side is SIZE, then centre-crop them to SIZE x SIZE."
    )
    channels: Literal[1, 3] | None = Field(
        None, description="Convert images to grey (1) or RGB (3); default: 1 if every image is grey, else 3."
    )
    test_fraction: float = Field(
        0.1, gt=0, le=0.5, description="Share held out as the test split when the data has no split of its own."
    )


class TrainerConfig(Section):
    epochs: PositiveInt = Field(60, description="Passes over the training data.")
    max_steps: PositiveInt | None = Field(
        None, description="Stop after this many optimizer steps (set, it overrides trainer.budget_minutes).")
    max_minutes: PositiveFloat | None = Field(
        None, description="Stop once this many minutes of training (steps only, not evaluations, pictures or "
        "checkpoints; counted across resumes) are done; the run ends completed and resumable with a larger value.")
    budget_minutes: PositiveFloat | None = Field(
        None, description="Train for about this many minutes (steps only, as max_minutes counts them): the run "
        "times its first budget_probe_steps steps, fixes its length in steps from that speed, records it in the "
        "checkpoint (a resume keeps it) and says so; every setting written as a share of the run ('100%') "
        "follows that length, so a slower machine gets a shorter, complete schedule. trainer.max_steps, if set, "
        "wins; max_minutes stays the hard stop. See docs/configuration.md (budgets in minutes).")
    budget_probe_steps: int = Field(
        40, ge=10, description="Steps a trainer.budget_minutes run times before it fixes its length (the first "
        "quarter of them, warm-up, not counted).")
    batch_size: PositiveInt = 128
    device: str = Field("auto", description="cpu, cuda, cuda:N or auto (cuda when available).")
    checkpoint_every: PositiveInt | None = Field(
        None, description="Also checkpoint every N steps (always: each epoch end, the run's end, on SIGINT/SIGTERM)."
    )
    peer_timeout: PositiveFloat = Field(
        60.0, le=86_400, description="torchrun: seconds a process may go without a heartbeat, once its first step "
        "is done, before the others call it stalled or dead and stop (the heartbeat goes on during rank-0-only work "
        "such as evaluations); at most a day.")
    first_step_timeout: PositiveFloat = Field(
        600.0, le=86_400, description="torchrun: the same allowance until the first step is done, when processes "
        "build kernels, read their data and meet in their first collectives at their own pace; at most a day.")

    @field_validator("device")
    @classmethod
    def _known_device(cls, value: str) -> str:
        if value in ("auto", "cpu", "cuda", "mps") or (value.startswith("cuda:") and value[5:].isdigit()):
            return value
        raise ValueError("should be one of auto, cpu, cuda, cuda:N, mps")


class WandbConfig(Section):
    project: str = Field("genframe", description="W&B project.")
    entity: str | None = Field(None, description="W&B team or user (default: your default entity).")
    name: str | None = Field(None, description="Run name shown in W&B (default: the run directory's name).")
    tags: list[str] = Field([], description="W&B tags.")
    mode: Literal["online", "offline", "disabled"] = Field(
        "online", description="offline writes RUN_DIR/wandb for `wandb sync`; disabled logs nothing."
    )
    init_timeout: PositiveFloat = Field(60.0, description="Seconds to wait for W&B to start before going offline.")


class TensorBoardConfig(Section):
    log_dir: str | None = Field(
        None, description="Folder for TensorBoard's event files (default: RUN_DIR/tensorboard); a resume appends there."
    )


class MlflowConfig(Section):
    tracking_uri: str | None = Field(
        None, description="MLflow tracking store (default: $MLFLOW_TRACKING_URI if set, else "
                          "sqlite:///RUN_DIR/mlflow.db with artifacts in RUN_DIR/mlartifacts)."
    )
    experiment: str = Field("genframe", description="MLflow experiment, created if missing.")
    run_name: str | None = Field(None, description="Run name shown in MLflow (default: the run directory's name).")
    log_checkpoint: bool = Field(True, description="Log the final checkpoint as an artifact at the end of the run.")


class LoggingConfig(Section):
    loggers: list[str] = Field(
        ["console", "jsonl"], description="Registered logger names, e.g. console, jsonl, wandb."
    )
    log_every: PositiveInt = Field(10, description="Log metrics every N optimizer steps.")
    sample_every: StepsOrShare | None = Field(
        None, description="Save sample grids every N steps, or every share of the run ('25%'; default: at the "
        "end of each epoch)."
    )
    sample_n: int = Field(64, ge=0, description="Samples in each preview picture (0: no previews).")
    sample_steps: PositiveInt | None = Field(
        None, description="Sampler steps for the fresh-noise grid (default: the recipe's generation steps)."
    )
    chain_n: int = Field(16, ge=0, description="Chains in the final sampling GIF (0: no GIF).")
    wandb: WandbConfig = WandbConfig()
    mlflow: MlflowConfig = MlflowConfig()
    tensorboard: TensorBoardConfig = TensorBoardConfig()


class CallbacksConfig(Section):
    """Which callbacks run: the recipe's defaults, plus ``use``, minus ``disable``; each one's settings
    table sits beside them (``[callbacks.NAME]``) and is validated by that callback's settings class."""

    model_config = ConfigDict(extra="allow", validate_assignment=True)

    use: list[str] = Field([], description="Callbacks added to the recipe's defaults, run after them in this order.")
    disable: list[str] = Field([], description="Default callbacks turned off by name.")

    def table(self, name: str) -> dict[str, Any]:
        """The settings given for callback ``name`` (empty when none were)."""
        value = (self.model_extra or {}).get(name, {})
        return dict(value) if isinstance(value, Mapping) else value


class RecipeConfig(Section):
    """Sections every recipe has; a recipe's config subclasses this and adds its own."""

    recipe: str | None = Field(None, description="Recipe name; if given it must match `genframe run NAME`.")
    seed: int = Field(0, ge=0, lt=2**32, description="Seeds model init, data order, sampler noise (0 to 2**32 - 1).")
    data: DataConfig = DataConfig()
    trainer: TrainerConfig = TrainerConfig()
    logging: LoggingConfig = LoggingConfig()
    callbacks: CallbacksConfig = CallbacksConfig()

    #: Settings read under a new name for a while (docs/compatibility.md): ``{"old.key": ("new.key", since,
    #: until)}``, each read with a deprecation warning. A recipe's config that has renames of its own
    #: writes ``{**RecipeConfig.renamed_settings, ...}`` to keep the core's.
    renamed_settings: ClassVar[dict[str, tuple[str, str, str]]] = {}
    #: Callbacks every run of this recipe has unless ``callbacks.disable`` names them, in call order.
    default_callbacks: ClassVar[tuple[str, ...]] = ("divergence_guard", "evaluation", "keep_best")
    #: The recipe's own defaults for callbacks' settings (a user's table overrides them key by key),
    #: e.g. ``{"keep_best": {"metric": "eval/energy_distance"}}`` for a recipe with its own quality metric.
    callback_settings: ClassVar[dict[str, dict[str, Any]]] = {}


FORMATS: dict[str, Literal["toml", "yaml", "json"]] = {
    ".toml": "toml",
    ".yaml": "yaml",
    ".yml": "yaml",
    ".json": "json",
}


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Parse a TOML, YAML or JSON config file into a dict, with one-line errors."""
    path = Path(path)
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ConfigError(f"config file {path}: unknown extension {path.suffix!r}; use .toml, .yaml, .yml or .json")
    try:
        text = path.read_text(encoding="utf-8-sig")  # a byte-order mark (Windows editors write one) is no setting
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist; check the path given to --config") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc}") from None
    if not text.strip():
        raise ConfigError(f"config file {path} is empty; add settings or leave out --config for the defaults")
    try:
        if fmt == "toml":
            data = tomllib.loads(text)
        elif fmt == "json":
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except Exception as exc:  # each parser has its own error type; all mean "malformed"
        reason = " ".join(str(exc).split())
        raise ConfigError(f"config file {path} is not valid {fmt.upper()}: {reason}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a table/mapping of sections, not {type(data).__name__}")
    return data


def parse_value(text: str) -> Any:
    """An override's value: JSON literals (numbers, true/false/null, lists, quoted strings), else a string."""
    try:
        return json.loads(text)
    except ValueError:
        lowered = text.strip().lower()
        if lowered in ("true", "false"):
            return lowered == "true"
        if lowered in ("none", "null"):
            return None
        return text


def apply_overrides(data: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Return a copy of ``data`` with each ``a.b.c=value`` override set."""
    result = copy.deepcopy(dict(data))
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"override {item!r} must look like section.key=value, e.g. trainer.epochs=3")
        parts = key.split(".")
        if any(not part for part in parts):
            raise ConfigError(f"override {item!r}: {key!r} is not a dotted key like trainer.epochs")
        node = result
        for depth, part in enumerate(parts[:-1]):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                prefix = ".".join(parts[: depth + 1])
                raise ConfigError(f"override {item!r}: {prefix} is a value, not a section")
            node = child
        node[parts[-1]] = parse_value(raw)
    return result


def deep_merge(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``update`` laid over it, section by section."""
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _suggest(model: type[BaseModel], loc: tuple[Any, ...], prefix: tuple[str, ...] = ()) -> str:
    """' (did you mean trainer.epochs?)' for an unknown key at ``loc``, else ''."""
    for part in loc[:-1]:
        field = model.model_fields.get(str(part))
        annotation = getattr(field, "annotation", None)
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return ""
        model = annotation
    close = difflib.get_close_matches(str(loc[-1]), list(model.model_fields), n=1)
    if not close:
        return f" (known keys here: {', '.join(model.model_fields)})"
    return f" (did you mean {'.'.join(map(str, (*prefix, *loc[:-1], close[0])))}?)"


def format_validation_error(error: ValidationError, model: type[BaseModel], prefix: tuple[str, ...] = ()) -> str:
    """One readable line per problem: ``dotted.path: reason, got value``; ``prefix`` is where ``model``
    sits in the whole config (e.g. ``("callbacks", "ema")`` for a callback's settings table)."""
    lines = []
    for item in error.errors(include_url=False):
        loc = ".".join(str(part) for part in (*prefix, *item["loc"])) or "(top level)"
        if item["type"] == "extra_forbidden":
            lines.append(f"{loc}: unknown key{_suggest(model, tuple(item['loc']), prefix)}")
            continue
        message = item["msg"]
        if "input" in item and not isinstance(item["input"], (dict, list)):
            message += f", got {item['input']!r}"
        lines.append(f"{loc}: {message}")
    return "; ".join(lines)


def validate_config(model: type[RecipeConfig], data: Mapping[str, Any]) -> RecipeConfig:
    """Build ``model`` from plain data (settings renamed a while ago read under their new names, each with a
    deprecation warning), or raise a one-line :class:`ConfigError`."""
    if model.renamed_settings:
        data = copy.deepcopy(dict(data))
        for old, (new, since, until) in model.renamed_settings.items():
            move_setting(data, old, new, since=since, until=until)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"invalid config: {format_validation_error(exc, model)}") from None


def build_config(
    model: type[RecipeConfig],
    path: str | Path | None = None,
    overrides: Iterable[str] = (),
    data: Mapping[str, Any] | None = None,
) -> RecipeConfig:
    """Defaults, then ``data`` or the file at ``path``, then ``--set`` overrides, validated."""
    base: dict[str, Any] = {}
    if path is not None:
        base = read_config_file(path)
    if data is not None:
        base = deep_merge(base, data)
    return validate_config(model, apply_overrides(base, overrides))


def config_to_dict(config: BaseModel) -> dict[str, Any]:
    """Plain JSON-able data for saving a resolved config."""
    return config.model_dump(mode="json")
