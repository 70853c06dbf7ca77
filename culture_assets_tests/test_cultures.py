from pathlib import Path

import pytest

from culture_assets.cultures import REGISTRY_ENV, load_registry, parse_registry
from culture_assets.partitions import culture_partitions
from culture_assets.errors import InputError

PACKAGED = (Path(__file__).resolve().parents[1] / "culture_assets" / "data" / "cultures.yaml").read_text()


def test_registry_has_the_papers_cultures_and_countries():
    registry = load_registry()
    countries = {c.key: c.country_alphas for c in registry.cultures}
    assert countries == {
        "arabic": ("IRQ", "JOR"), "bengali": ("BGD",), "chinese": ("CHN",), "english": ("USA",), "german": ("DEU",),
        "korean": ("KOR",), "portuguese": ("BRA",), "spanish": ("ARG", "MEX"), "turkish": ("TUR",),
    }
    assert registry.get("korean").language == "ko"
    assert registry.get("arabic").system_prompt.native != registry.get("arabic").system_prompt.english


def test_a_users_registry_adds_a_partition_without_code(tmp_path, monkeypatch):
    greek = PACKAGED + """
  - key: greek
    display_name: Greek
    language: el
    language_name: Greek
    countries:
      - {name: Greece, alpha: GRC, numeric: 300}
    system_prompt:
      english: "You are a Greek chatbot that knows Greek culture very well."
      native: "Είσαι ένα ελληνικό chatbot που γνωρίζει πολύ καλά τον ελληνικό πολιτισμό."
"""
    path = tmp_path / "cultures.yaml"
    path.write_text(greek, encoding="utf-8")
    monkeypatch.setenv(REGISTRY_ENV, str(path))
    assert culture_partitions().get_partition_keys()[-1] == "greek"
    assert len(load_registry().keys) == 10


@pytest.mark.parametrize(
    ("broken", "expected"),
    [
        (PACKAGED.replace("language_name: Korean", "langauge_name: Korean"), ["entry 6 (key 'korean')", "langauge_name"]),
        (PACKAGED.replace("alpha: TUR", "alpha: Turkey"), ["entry 9 (key 'turkish')", "countries.0.alpha"]),
        (PACKAGED.replace("key: german", "key: German"), ["entry 5", "'key'"]),
        (PACKAGED.replace("- {name: Jordan, alpha: JOR, numeric: 400}", "- {name: Jordan, alpha: IRQ, numeric: 400}"), ["entry 1 (key 'arabic')", "countries", "twice"]),
        ("cultures: [\n  - key: x\n", ["not valid YAML"]),
    ],
)
def test_malformed_registry_names_file_entry_and_field(broken, expected):
    with pytest.raises(InputError) as error:
        parse_registry(broken, "my/cultures.yaml")
    message = str(error.value)
    assert message.startswith("my/cultures.yaml")
    for part in expected:
        assert part in message


def test_missing_registry_file_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv(REGISTRY_ENV, str(tmp_path / "nope.yaml"))
    with pytest.raises(InputError, match="nope.yaml.*not found"):
        load_registry()
