"""One YAML per evaluation task (`datasets_manifest/`), validated.

A manifest names where a task's data comes from, how to read it (file, sha256, text and label
fields), its label set with one verbalizer per label, the instruction shown to the model and
the known defects of the data with how each is handled. Loading fails on the first malformed
file with the file and the field named.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from culture_assets.errors import InputError

MANIFESTS_ENV = "CULTURE_ASSETS_MANIFESTS"
TASKS = (
    "offensive", "offensive_fine_grained", "hate", "hate_fine_grained", "spam", "vulgar",
    "threat", "bias", "toxicity", "abusive", "aggressiveness", "stance",
)


class Source(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    citation: str = Field(min_length=1)
    url: str = Field(min_length=1)


class DataFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str = Field(min_length=1, description="relative to the evaluation data directory")
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    rows: int | None = Field(default=None, ge=0, description="JSON lines in the file, labelled or not")
    label_counts: dict[str, int] = Field(default_factory=dict)


class LabelChoice(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    label: str = Field(min_length=1, description="the value in the data's label field")
    verbalizer: str = Field(min_length=1, description="what the model says for this label")


class Defect(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: str = Field(pattern=r"^[a-z_]+$")
    description: str = Field(min_length=1)
    handling: str = Field(min_length=1)


class DatasetManifest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    culture: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    language: str = Field(pattern=r"^[a-z]{2,3}$")
    task: str
    dataset: str = Field(min_length=1)
    paper_samples: int = Field(gt=0, description="rows the paper evaluated")
    source: Source
    license: str = Field(min_length=1)
    available_in_reference: bool
    files: tuple[DataFile, ...]
    text_field: str = Field(min_length=1)
    label_field: str = Field(min_length=1)
    labels: tuple[LabelChoice, ...] = Field(min_length=2)
    instruction: str = Field(min_length=1)
    defects: tuple[Defect, ...] = ()

    @field_validator("task")
    @classmethod
    def _known_task(cls, task: str) -> str:
        if task not in TASKS:
            raise ValueError(f"unknown task {task!r}; expected one of {list(TASKS)}")
        return task

    @field_validator("instruction")
    @classmethod
    def _has_placeholders(cls, instruction: str) -> str:
        missing = [p for p in ("{text}", "{choices}") if p not in instruction]
        if missing:
            raise ValueError(f"the instruction must contain {missing}")
        return instruction

    @field_validator("labels")
    @classmethod
    def _distinct_labels(cls, labels: tuple[LabelChoice, ...]) -> tuple[LabelChoice, ...]:
        for name, values in (("label", [c.label for c in labels]), ("verbalizer", [normalise_answer(c.verbalizer) for c in labels])):
            if len(set(values)) != len(values):
                raise ValueError(f"every {name} must be distinct, got {values}")
        return labels

    @model_validator(mode="after")
    def _files_match_availability(self) -> "DatasetManifest":
        if self.available_in_reference and (not self.files or not all(f.sha256 for f in self.files)):
            raise ValueError("an available dataset needs at least one file, each with its sha256")
        return self

    @property
    def label_set(self) -> list[str]:
        return [c.label for c in self.labels]

    @property
    def verbalizers(self) -> list[str]:
        return [c.verbalizer for c in self.labels]

    def prompt(self, text: str) -> str:
        choices = ", ".join(f'"{v}"' for v in self.verbalizers)
        return self.instruction.replace("{choices}", choices).replace("{text}", text)

    def messages(self, text: str, system_prompt: str | None = None) -> list[dict[str, str]]:
        """The chat turn(s) shown to a model for one row."""
        user = {"role": "user", "content": self.prompt(text)}
        return [{"role": "system", "content": system_prompt}, user] if system_prompt else [user]


def normalise_answer(text: str) -> str:
    """Lower case, inner whitespace collapsed, surrounding quotes, spaces and final punctuation removed."""
    return re.sub(r"\s+", " ", text).strip().strip("\"'`“”‘’«»").strip().rstrip(".!。").strip().lower()


def _field_of(error: dict) -> str:
    return ".".join(str(part) for part in error["loc"]) or "(file)"


def parse_manifest(text: str, source: str) -> DatasetManifest:
    """Validate one manifest's YAML text; an error names the file and the field."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InputError(source, f"not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise InputError(source, "expected a mapping of manifest fields")
    try:
        manifest = DatasetManifest.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise InputError(source, f"{first['msg']} (got {first.get('input')!r})", field=_field_of(first)) from exc
    if Path(source).stem != manifest.id:
        raise InputError(source, f"the file must be named after its id ({manifest.id}.yaml)", field="id")
    return manifest


def default_manifests_dir() -> Path:
    """$CULTURE_ASSETS_MANIFESTS, else `datasets_manifest/` of this checkout."""
    raw = os.environ.get(MANIFESTS_ENV)
    return Path(raw).expanduser().resolve() if raw else Path(__file__).resolve().parents[2] / "datasets_manifest"


def load_manifests(directory: Path | None = None, culture: str | None = None) -> list[DatasetManifest]:
    """All manifests of `directory` (default: default_manifests_dir()), optionally one culture's."""
    folder = (directory or default_manifests_dir()).resolve()
    if not folder.is_dir():
        raise InputError(str(folder), f"manifest directory not found (set {MANIFESTS_ENV})")
    manifests = [parse_manifest(path.read_text(encoding="utf-8"), str(path)) for path in sorted(folder.glob("*.yaml"))]
    if not manifests:
        raise InputError(str(folder), "holds no *.yaml manifest")
    return [m for m in manifests if culture is None or m.culture == culture]
