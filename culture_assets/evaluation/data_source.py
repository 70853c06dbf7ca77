"""Where the evaluation datasets and their manifests come from (the `eval_data` Dagster resource derives its fields from these)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from culture_assets.errors import InputError
from culture_assets.evaluation.download import EVAL_DATA_URL_ENV, archive_url, downloaded_data_dir, read_record
from culture_assets.evaluation.loader import EVAL_DATA_ENV, default_data_dir
from culture_assets.evaluation.manifest import DatasetManifest, default_manifests_dir, load_manifests
from culture_assets.settings import data_home


class EvalDataSettings(BaseModel):
    """Each setting left empty falls back to its environment variable, then to the default named in its description."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    data_dir: str = Field(default="", description=f"A directory that already holds the evaluation datasets. Empty: ${EVAL_DATA_ENV}; both empty: the evaluation_data asset downloads them into <data home>/evaluation_data.")
    manifests_dir: str = Field(default="", description="The datasets' YAML manifests. Empty: $CULTURE_ASSETS_MANIFESTS, else datasets_manifest/.")
    archive_url: str = Field(default="", description=f"The archive evaluation_data downloads. Empty: ${EVAL_DATA_URL_ENV}, else the reference repository at its pinned commit.")

    def user_data_path(self) -> Path | None:
        """The directory the user points at (resource or environment), or None: the data is downloaded."""
        return Path(self.data_dir).expanduser().resolve() if self.data_dir else default_data_dir()

    def url(self) -> str:
        return archive_url(self.archive_url)

    def data_path(self) -> Path:
        path = self.user_data_path()
        if path is not None:
            if not path.is_dir():
                raise InputError(str(path), f"evaluation data directory not found (set by {EVAL_DATA_ENV} or the resource's data_dir)", field="data_dir")
            return path
        downloaded = downloaded_data_dir(data_home())
        if read_record(downloaded) is None:
            raise InputError(
                str(downloaded),
                f"the evaluation data is not downloaded yet: materialize the evaluation_data asset (it fetches {self.url()}, "
                f"{EVAL_DATA_URL_ENV} overrides it), or set {EVAL_DATA_ENV} to a directory that holds the datasets",
                field="data_dir",
            )
        return downloaded

    def manifests_path(self) -> Path:
        return Path(self.manifests_dir).expanduser().resolve() if self.manifests_dir else default_manifests_dir()

    def manifests(self, culture: str | None = None) -> list[DatasetManifest]:
        return load_manifests(self.manifests_path(), culture)
