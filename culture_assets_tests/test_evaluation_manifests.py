"""The 59 dataset manifests: valid, complete against the paper, and true to the reference data."""

import collections
import shutil
from pathlib import Path

import pytest
import yaml

from culture_assets.errors import InputError
from culture_assets.evaluation import verify
from culture_assets.evaluation.loader import DatasetStatus, load_dataset
from culture_assets.evaluation.manifest import default_manifests_dir, load_manifests

# tasks per culture and total samples in the paper's table (slides, "Applying CultureLLM models to tasks")
PAPER_TASKS = {"arabic": 10, "bengali": 6, "chinese": 3, "english": 6, "german": 5, "korean": 6, "portuguese": 5, "spanish": 11, "turkish": 7}


def test_every_manifest_validates_and_the_paper_is_covered():
    manifests = load_manifests()
    assert len(manifests) == 59 == len(list(default_manifests_dir().glob("*.yaml")))
    assert collections.Counter(m.culture for m in manifests) == PAPER_TASKS
    assert sum(m.paper_samples for m in manifests) == 68_607
    cvalues = next(m for m in manifests if m.dataset == "CValues")
    # declared in the reference code's format, though the file is not in the reference copy
    assert not cvalues.available_in_reference and cvalues.files[0].path.endswith("cvalues_responsibility_mc.jsonl")
    assert (cvalues.text_field, cvalues.label_field) == ("prompt", "label")
    # an abusive-language task offers abusive / not abusive, never the offensive task's answers
    for manifest in manifests:
        if manifest.task == "abusive":
            assert all("offensive" not in v for v in manifest.verbalizers), manifest.id
    for manifest in manifests:
        assert manifest.prompt("some text").endswith("some text")
        for verbalizer in manifest.verbalizers:
            assert f'"{verbalizer}"' in manifest.prompt("x")


def _broken_copy(tmp_path: Path, name: str, edit) -> Path:
    folder = tmp_path / "manifests"
    folder.mkdir()
    source = default_manifests_dir() / f"{name}.yaml"
    raw = yaml.safe_load(source.read_text(encoding="utf-8"))
    edit(raw)
    (folder / source.name).write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    return folder


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (lambda raw: raw.pop("label_field"), "label_field"),
        (lambda raw: raw.update(task="sarcasm"), "task"),
        (lambda raw: raw["labels"].append({"label": "OFF", "verbalizer": "again"}), "labels"),
        (lambda raw: raw.update(instruction="Classify: {text}"), "instruction"),
        (lambda raw: raw["files"][0].update(sha256="not-a-hash"), "files.0.sha256"),
    ],
)
def test_a_malformed_manifest_names_its_file_and_field(tmp_path, edit, field):
    folder = _broken_copy(tmp_path, "arabic_osact4_offensive", edit)
    with pytest.raises(InputError) as caught:
        load_manifests(folder)
    assert caught.value.source.endswith("arabic_osact4_offensive.yaml")
    assert caught.value.field == field


def test_reference_datasets_match_their_manifests(reference_data):
    """Row counts and label sets of every dataset in the reference copy, against its manifest."""
    for manifest in load_manifests():
        load = load_dataset(manifest, reference_data, sample_size=None)
        if not manifest.available_in_reference:
            assert load.status in (DatasetStatus.NOT_AVAILABLE, DatasetStatus.MISSING), manifest.id
            continue
        assert load.status is DatasetStatus.LOADED, load.detail
        declared = manifest.files[0]
        assert load.n_file_rows == declared.rows, manifest.id
        assert load.n_unknown_label == 0, manifest.id
        expected = collections.Counter({k: v for k, v in declared.label_counts.items() if k})
        assert load.n_empty_label == declared.label_counts.get("", 0)
        assert set(expected) <= set(manifest.label_set), manifest.id
        found = collections.Counter(load.rows["label"].to_list())
        # rows with an empty text are dropped too (Turkish spam); each is counted
        assert sum(found.values()) + load.n_empty_text == sum(expected.values()), manifest.id
        assert load.rows.height == load.n_file_rows - load.n_empty_label - load.n_empty_text


def test_reference_defects_are_handled_as_declared(reference_data):
    by_id = {m.id: m for m in load_manifests()}
    korean = load_dataset(by_id["korean_hatespeech_hate"], reference_data, sample_size=None)
    assert (korean.n_empty_label, korean.rows.height) == (218, 782)
    solid = load_dataset(by_id["english_solid_offensive"], reference_data, sample_size=None)
    assert set(solid.rows["label"].to_list()) == {"NOT"}
    sampled = load_dataset(by_id["german_germeval2018_offensive"], reference_data, sample_size=1000, seed=3)
    again = load_dataset(by_id["german_germeval2018_offensive"], reference_data, sample_size=1000, seed=3)
    assert sampled.rows.height == 1000 and sampled.rows["row_id"].to_list() == again.rows["row_id"].to_list()


def test_verify_command_reports_missing_and_mismatched_files(tmp_path, reference_data, capsys):
    data = tmp_path / "data"
    for manifest in load_manifests(culture="german"):
        for declared in manifest.files:
            (data / declared.path).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(reference_data / declared.path, data / declared.path)
    (data / "Germany/HASOC/hate_off_detect.jsonl").write_text('{"tweet": "x", "label": "NOT"}\n', encoding="utf-8")
    (data / "Germany/GermEval/germeval2018.jsonl").unlink()
    assert verify.main(["--data-dir", str(data), "--culture", "german"]) == 1
    out = capsys.readouterr().out
    assert "checksum_mismatch  german_hasoc2020_hate" in out
    assert "missing            german_germeval2018_offensive" in out
    assert "3 ok, 1 missing, 1 checksum mismatch" in out
