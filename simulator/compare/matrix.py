"""The run matrix of `tessera compare`: targets x models x contexts x batches, checked before any run.

A target is a preset name or a TOML path, a model a registered name or an `.onnx` path. Each gets
a *label* (the name, or the file's stem) that keys runs in reports and baselines, so two TOML
copies of one preset stay apart as long as their files are named differently.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from simulator.hardware import PRECISIONS, load_hardware


class CompareError(ValueError):
    """Bad input to `tessera compare` (the message names the option, file or field)."""


@dataclass(frozen=True)
class TargetInfo:
    label: str          # key in reports and baselines
    spec: str           # what the user gave: a preset name or a TOML path
    name: str           # the description's `name` field
    kind: str           # "programmable" or "spatial"
    description: str


@dataclass(frozen=True)
class Settings:
    """Options shared by every run; a baseline made with other settings cannot be compared."""

    prompt_len: int | None = None     # None: each run's prompt is its context
    gen_len: int = 1024
    precision: str = "bf16"
    kv_precision: str = "bf16"

    def __post_init__(self) -> None:
        for option, value in (("--prompt-len", self.prompt_len), ("--gen-len", self.gen_len)):
            if value is not None and value <= 0:
                raise CompareError(f"{option} {value}: must be positive")
        for option, value in (("--precision", self.precision), ("--kv-precision", self.kv_precision)):
            if value not in PRECISIONS:
                raise CompareError(f"{option} {value!r}: one of {', '.join(PRECISIONS)}")

    def to_json(self) -> dict:
        return {"prompt_len": self.prompt_len, "gen_len": self.gen_len, "precision": self.precision,
                "kv_precision": self.kv_precision}


@dataclass(frozen=True)
class Run:
    model: str          # model label
    model_spec: str
    target: str         # target label
    target_spec: str
    context: int
    batch: int

    @property
    def key(self) -> str:
        return run_key(self.model, self.target, self.context, self.batch)


def run_key(model: str, target: str, context: int, batch: int) -> str:
    """How a run is named in report.json and baselines: model/target/context/batch."""
    return f"{model}/{target}/{context}/{batch}"


@dataclass(frozen=True)
class Matrix:
    targets: tuple[TargetInfo, ...]
    models: tuple[tuple[str, str], ...]     # (label, spec)
    contexts: tuple[int, ...]
    batches: tuple[int, ...]
    settings: Settings

    @property
    def runs(self) -> list[Run]:
        return [Run(model, model_spec, t.label, t.spec, context, batch)
                for model, model_spec in self.models for t in self.targets
                for context in self.contexts for batch in self.batches]

    def to_json(self) -> dict:
        return {"targets": [t.spec for t in self.targets], "models": [spec for _, spec in self.models],
                "contexts": list(self.contexts), "batches": list(self.batches)}


def split_list(items: Iterable[str]) -> list[str]:
    """`--targets a,b c` -> [a, b, c]: items may be given comma-separated, space-separated or both."""
    return [part.strip() for item in items for part in item.split(",") if part.strip()]


def parse_positive_ints(items: Iterable[str], option: str) -> tuple[int, ...]:
    values = []
    for text in split_list(items):
        if not text.isdigit() or int(text) <= 0:
            raise CompareError(f"{option} {text!r}: expected positive integers, e.g. {option} 1024,8192")
        values.append(int(text))
    if not values:
        raise CompareError(f"{option}: give at least one value")
    return tuple(dict.fromkeys(values))


def load_targets(specs: Sequence[str]) -> tuple[TargetInfo, ...]:
    """Every description is loaded (and so validated) before any simulation starts."""
    if not specs:
        raise CompareError("--targets: give at least one preset name or .toml path")
    targets: list[TargetInfo] = []
    for spec in dict.fromkeys(specs):
        chip = load_hardware(spec)
        label = Path(spec).stem if spec.endswith(".toml") else spec
        targets.append(TargetInfo(label, spec, chip.name, chip.kind, chip.description))
    _unique([t.label for t in targets], "--targets", "target")
    return tuple(targets)


def load_models(specs: Sequence[str]) -> tuple[tuple[str, str], ...]:
    """A registered name (checked against the registry) or an existing .onnx file."""
    if not specs:
        raise CompareError("--models: give at least one registered model name or .onnx path")
    models: list[tuple[str, str]] = []
    for spec in dict.fromkeys(specs):
        path = Path(spec)
        if path.suffix == ".onnx":
            if not path.is_file():
                raise CompareError(f"--models {spec}: no such file")
            models.append((path.stem, spec))
            continue
        import models as registry

        registry.get_config(spec)   # UnknownModelError (a ValueError) lists the known names
        models.append((spec, spec))
    _unique([label for label, _ in models], "--models", "model")
    return tuple(models)


def _unique(labels: list[str], option: str, what: str) -> None:
    seen: set[str] = set()
    for label in labels:
        if label in seen:
            raise CompareError(f"{option}: two {what}s share the label {label!r} (a file's stem names it in "
                               "reports and baselines); rename one file")
        seen.add(label)


def build_matrix(targets: Sequence[str], models: Sequence[str], contexts: Sequence[str], batches: Sequence[str],
                 settings: Settings) -> Matrix:
    return Matrix(load_targets(split_list(targets)), load_models(split_list(models)),
                  parse_positive_ints(contexts, "--contexts"), parse_positive_ints(batches, "--batches"), settings)
