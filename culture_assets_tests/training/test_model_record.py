"""The model record contract: what the model assets store is what the evaluation assets read, and a malformed
stored record fails naming the asset and the field."""

import json

import pytest

from culture_assets.errors import InputError
from culture_assets.training.model_record import ModelRecord
from culture_assets_tests.evaluation_fixtures import api_record, local_record, with_culture_prompts


def stored(record: ModelRecord) -> dict:
    """The record as the IO manager writes and reads it back (a JSON object)."""
    return json.loads(json.dumps(record.model_dump(mode="json")))


def test_a_stored_record_reads_back_unchanged(tmp_path):
    for value in (local_record("german", tmp_path / "base", tmp_path / "adapter"), api_record("german", "ft:x"),
                  with_culture_prompts(local_record("all", tmp_path / "base", tmp_path / "one"), ["german", "arabic"])):
        record = ModelRecord.from_stored(value, "culture_model")
        assert ModelRecord.from_stored(stored(record), "culture_model") == record
        assert stored(record) == {**{"system_prompts": None}, **value}


@pytest.mark.parametrize(
    ("change", "field", "says"),
    [
        ({"adapter_path": None}, "adapter_path", "LoRA adapter directory"),
        ({"trainer": "openai", "model_id": None}, "model_id", "fine-tuned model id"),
        ({"trainer": "vllm"}, "trainer", "'local' or 'openai'"),
        ({"n_train": "many"}, "n_train", "integer"),
        ({"heldout_question_ids": ["Q1"]}, "heldout_question_ids", "not permitted"),
    ],
)
def test_a_malformed_record_names_the_asset_and_the_field(tmp_path, change, field, says):
    value = {**local_record("german", tmp_path / "base", tmp_path / "adapter"), **change}
    with pytest.raises(InputError) as caught:
        ModelRecord.from_stored(value, "culture_model")
    assert (caught.value.source, caught.value.field) == ("culture_model record", field)
    assert says in str(caught.value) and "re-materialize culture_model" in str(caught.value)


def test_a_record_without_a_required_field_names_it(tmp_path):
    value = local_record("german", tmp_path / "base", tmp_path / "adapter")
    del value["system_prompt"]
    with pytest.raises(InputError, match="culture_model record, field 'system_prompt'"):
        ModelRecord.from_stored(value, "culture_model")
