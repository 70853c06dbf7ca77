"""A seed_survey failure names the culture it was building, besides the file, line and field."""

from pathlib import Path

import dagster as dg
import pytest

from culture_assets.assets import survey
from culture_assets.definitions import defs
from culture_assets.errors import InputError
from culture_assets.resources import SURVEY_ENV
from culture_assets.survey.questions import load_questions


def test_bad_survey_row_failure_names_the_culture(data_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ids = [q.id for q in load_questions()]
    bad = tmp_path / "wave8_DEU.csv"
    rows = ["B_COUNTRY_ALPHA," + ",".join(ids), "DEU," + ",".join("1" for _ in ids), "DEU," + ",".join(["x"] + ["2"] * (len(ids) - 1))]
    bad.write_text("\n".join(rows) + "\n")
    monkeypatch.setenv(SURVEY_ENV, str(bad))

    with pytest.raises(InputError) as raised:
        dg.materialize([survey.seed_survey], partition_key="german", resources=dict(defs.resources), instance=dg.DagsterInstance.ephemeral())
    message = str(raised.value)
    assert "culture 'german'" in message and str(bad) in message and "row 3" in message and "'Q27'" in message


def test_error_already_naming_the_culture_is_kept() -> None:
    error = InputError("registry.yaml", "culture 'german' names country ['XXX']", field="countries")
    assert error.about("culture 'german'") is error
    assert str(InputError("a.csv", "bad").about("culture 'korean'")) == "a.csv: culture 'korean': bad"
