"""The culture registry: which cultures exist, their WVS countries and prompts.

Loaded from the packaged `data/cultures.yaml`, or from the file named by the
CULTURE_ASSETS_REGISTRY environment variable. The culture partitions come from it, so
adding a culture is one registry entry and no code change.
"""

from __future__ import annotations

import os
from functools import lru_cache
from importlib import resources
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from culture_assets.errors import InputError

REGISTRY_ENV = "CULTURE_ASSETS_REGISTRY"


class Country(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    alpha: str = Field(pattern=r"^[A-Z]{3}$", description="WVS B_COUNTRY_ALPHA (ISO 3166 alpha-3)")
    numeric: int = Field(ge=0, le=999, description="WVS B_COUNTRY (ISO 3166 numeric)")


class SystemPrompt(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    english: str = Field(min_length=1)
    native: str = Field(min_length=1)


class Culture(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    key: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    display_name: str = Field(min_length=1)
    language: str = Field(pattern=r"^[a-z]{2,3}$", description="ISO 639 language code")
    language_name: str = Field(min_length=1)
    countries: tuple[Country, ...] = Field(min_length=1)
    system_prompt: SystemPrompt

    @field_validator("countries")
    @classmethod
    def _distinct_countries(cls, countries: tuple[Country, ...]) -> tuple[Country, ...]:
        alphas = [c.alpha for c in countries]
        if len(set(alphas)) != len(alphas):
            raise ValueError(f"a country is listed twice: {alphas}")
        return countries

    @property
    def country_alphas(self) -> tuple[str, ...]:
        return tuple(c.alpha for c in self.countries)


class CultureRegistry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    cultures: tuple[Culture, ...] = Field(min_length=1)

    @field_validator("cultures")
    @classmethod
    def _distinct_keys(cls, cultures: tuple[Culture, ...]) -> tuple[Culture, ...]:
        keys = [c.key for c in cultures]
        if len(set(keys)) != len(keys):
            raise ValueError(f"a culture key is listed twice: {keys}")
        return cultures

    @property
    def keys(self) -> list[str]:
        return [c.key for c in self.cultures]

    def get(self, key: str) -> Culture:
        for culture in self.cultures:
            if culture.key == key:
                return culture
        raise KeyError(f"unknown culture {key!r}; the registry has {self.keys}")


def _describe_error(raw: dict, error: dict) -> tuple[str, str]:
    """Turn a pydantic error location into (entry, field) a person can find in the YAML."""
    loc = list(error["loc"])
    entry = "top level"
    if len(loc) >= 2 and loc[0] == "cultures" and isinstance(loc[1], int):
        index = loc[1]
        try:
            key = raw["cultures"][index].get("key", "?")
        except (KeyError, IndexError, TypeError, AttributeError):
            key = "?"
        entry = f"entry {index + 1} (key {key!r})"
        loc = loc[2:]
    return entry, ".".join(str(part) for part in loc) or "(entry)"


def parse_registry(text: str, source: str) -> CultureRegistry:
    """Validate registry YAML text; errors name the file, the entry and the field."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InputError(source, f"not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise InputError(source, "expected a mapping with a 'cultures' list")
    try:
        return CultureRegistry.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        entry, field = _describe_error(raw, first)
        raise InputError(source, f"{first['msg']} (got {first.get('input')!r})", row=entry, field=field) from exc


def registry_path() -> Path | None:
    raw = os.environ.get(REGISTRY_ENV)
    return Path(raw).expanduser() if raw else None


@lru_cache(maxsize=8)
def _load(path: str | None) -> CultureRegistry:
    if path is None:
        text = resources.files("culture_assets.data").joinpath("cultures.yaml").read_text(encoding="utf-8")
        return parse_registry(text, "culture_assets/data/cultures.yaml")
    file = Path(path)
    if not file.is_file():
        raise InputError(str(file), f"culture registry not found (set by {REGISTRY_ENV})")
    return parse_registry(file.read_text(encoding="utf-8"), str(file))


def load_registry(path: Path | None = None) -> CultureRegistry:
    """The registry in force: `path`, else $CULTURE_ASSETS_REGISTRY, else the packaged one."""
    chosen = path or registry_path()
    return _load(str(chosen) if chosen else None)
