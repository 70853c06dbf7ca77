"""The scorers on real tiny models and the fake chat server: packed log-likelihoods, adapters, the strict parser, the cache."""

import numpy as np
import pytest
import torch

from culture_assets.evaluation.cache import EvalCache
from culture_assets.evaluation.chat import chat_runner, parse_answer
from culture_assets.evaluation.loglik import answer_ids, choice_ids, choice_logliks, generate_constrained, load_local_model, pack, prompt_ids, shared_prefix_length
from culture_assets.evaluation.metrics import INVALID
from culture_assets.evaluation.models import ModelUnderTest, Role
from culture_assets.evaluation.scoring import ChoiceTask, ModelScorer, ScoringSettings
from culture_assets.llm.settings import LLMSettings
from culture_assets.store import Warehouse
from culture_assets_tests.evaluation_fixtures import make_adapter

PROMPTS = [[{"role": "system", "content": "You are from Germany."}, {"role": "user", "content": "Is this offensive? " + "word " * i}] for i in range(1, 6)]
CHOICES = ["offensive", "not offensive", "yes", "no"]


def naive_logliks(local, prompts, choices):
    """One full forward pass per (prompt, choice): the reference the packed scorer must equal."""
    result = np.zeros((len(prompts), len(choices)))
    for i, messages in enumerate(prompts):
        prompt = prompt_ids(local.tokenizer, messages)
        for k, choice in enumerate(answer_ids(local.tokenizer, choices)):
            with torch.no_grad():
                logprobs = torch.log_softmax(local.model(torch.tensor([prompt + choice])).logits[0].float(), -1)
            result[i, k] = sum(logprobs[len(prompt) + j - 1, token].item() for j, token in enumerate(choice))
    return result


def test_packed_scoring_equals_one_pass_per_choice(tiny_model_dir):
    local = load_local_model(str(tiny_model_dir), device="cpu")
    packed = choice_logliks(local, PROMPTS, CHOICES, batch_size=2)
    np.testing.assert_allclose(packed, naive_logliks(local, PROMPTS, CHOICES), atol=1e-4)


def test_shared_prefix_is_exact_whatever_the_prompts_share(tiny_model_dir):
    """Prompts that share only the chat template, a single prompt (all but its last token shared),
    and one prompt that is the start of another: each scored exactly as alone."""
    local = load_local_model(str(tiny_model_dir), device="cpu")
    mixed = [PROMPTS[0], [{"role": "user", "content": "Is this offensive? word"}], [{"role": "system", "content": "Du bist aus Deutschland."}] + PROMPTS[2][1:]]
    for prompts in (mixed, PROMPTS[:1], [PROMPTS[0], PROMPTS[0]]):
        np.testing.assert_allclose(choice_logliks(local, prompts, CHOICES, batch_size=2), naive_logliks(local, prompts, CHOICES), atol=1e-4)


def test_shared_prefix_leaves_each_prompt_its_last_token():
    first, second = pack([1, 2, 3, 4], [[7], [8, 9]]), pack([1, 2, 3, 5, 6], [[7], [8, 9]])
    assert shared_prefix_length([first, second]) == 3
    assert shared_prefix_length([first]) == 3
    assert shared_prefix_length([first, pack([9, 2, 3], [[7]])]) == 0


def test_lora_adapter_is_applied(tiny_model_dir, tmp_path):
    adapter = make_adapter(tiny_model_dir, tmp_path / "adapter", seed=5)
    base = choice_logliks(load_local_model(str(tiny_model_dir), device="cpu"), PROMPTS, CHOICES)
    tuned_model = load_local_model(str(tiny_model_dir), str(adapter), device="cpu")
    tuned = choice_logliks(tuned_model, PROMPTS, CHOICES)
    assert np.abs(base - tuned).max() > 1e-3
    np.testing.assert_allclose(tuned, naive_logliks(tuned_model, PROMPTS, CHOICES), atol=1e-4)


def test_constrained_generation_answers_a_choice(tiny_model_dir):
    local = load_local_model(str(tiny_model_dir), device="cpu")
    assert generate_constrained(local, PROMPTS[0], ["yes", "no"]) in {"yes", "no"}


@pytest.mark.parametrize(
    ("output", "expected"),
    [("offensive", "OFF"), (" Offensive. ", "OFF"), ('"Not offensive"', "NOT"),
     # the raw labels were never shown in the prompt: a model answering them is not understood
     ("NOT", INVALID), ("OFF", INVALID), ("It is offensive", INVALID), ("offensive, I think", INVALID), ("", INVALID), (None, INVALID)],
)
def test_strict_parser(output, expected):
    assert parse_answer(output, ["OFF", "NOT"], ["offensive", "not offensive"]) == expected


def test_strict_parser_rejects_a_hidden_raw_label():
    # JMT-style: labels "1"/"0" shown as "yes"/"no"; a digit is not an answer the prompt offered
    assert parse_answer("1", ["1", "0"], ["yes", "no"]) == INVALID
    assert parse_answer("Yes", ["1", "0"], ["yes", "no"]) == "1"


def test_structured_parser():
    assert parse_answer('{"answer": "not offensive"}', ["OFF", "NOT"], ["offensive", "not offensive"], structured=True) == "NOT"
    assert parse_answer("not offensive", ["OFF", "NOT"], ["offensive", "not offensive"], structured=True) == INVALID


def test_chat_scorer_sends_temperature_zero_and_caches(tmp_path, fake_openai):
    fake_openai.chat_reply = lambda body: "yes" if "1" in body["messages"][-1]["content"] else "definitely"
    warehouse = Warehouse(tmp_path / "w.duckdb")
    cache = EvalCache(warehouse)
    llm = LLMSettings(base_url=fake_openai.base_url, api_key="k")
    spec = ModelUnderTest(role=Role.CULTURE_MODEL, trainer="openai", base_model="b", api_model="ft-x")
    task = ChoiceTask("d", ["1", "0"], ["yes", "no"], ["r1", "r2"], [[{"role": "user", "content": f"text {i}"}] for i in (1, 2)])
    scorer = ModelScorer(spec, cache, lambda model: chat_runner(llm, model, warehouse))
    outputs = scorer.run(task)
    assert outputs.predictions == ["1", INVALID] and outputs.n_cached == 0
    assert all(r.body["temperature"] == 0 and r.body["model"] == "ft-x" for r in fake_openai.requests)
    again = ModelScorer(spec, cache, lambda model: chat_runner(llm, model, warehouse)).run(task)
    assert again.predictions == outputs.predictions and again.n_cached == 2
    assert fake_openai.count(r"/chat/completions") == 2
    scorer.close()


def test_the_four_models_come_from_the_training_records(tmp_path):
    from culture_assets.evaluation.models import models_under_test
    from culture_assets.training.model_record import ModelRecord
    from culture_assets_tests.evaluation_fixtures import local_record, with_culture_prompts

    record = ModelRecord.from_stored(local_record("german", tmp_path / "base", tmp_path / "adapter"), "culture_model")
    one = ModelRecord.from_stored(with_culture_prompts(local_record("all", tmp_path / "base", tmp_path / "one"), ["german"]), "culturellm_one")
    base, prompted, culture, together = models_under_test("german", record, one, "You live in Germany.")
    assert [m.role for m in (base, prompted, culture, together)] == list(Role)
    assert (base.adapter_path, base.system_prompt, prompted.system_prompt) == (None, None, "You live in Germany.")
    assert base.fingerprint == prompted.fingerprint != culture.fingerprint != together.fingerprint
    assert together.system_prompt == "You are a person from the german culture."


def test_a_label_that_extends_another_wins_when_it_is_the_likeliest_answer(tmp_path):
    """'10' = '1' + '0' with a digit-splitting tokenizer. A model taught to answer '10' must pick it:
    scored without the end-of-turn token, '1' (a prefix of '10') could never score below '10'."""
    from culture_assets.tiny_model import build_tiny_chat_model

    model_dir = build_tiny_chat_model(tmp_path / "digits", ["pick one of 1 2 3 4 5 6 7 8 9 0 please"] * 8, vocab_size=300)
    local = load_local_model(str(model_dir), device="cpu")
    one, ten = choice_ids(local.tokenizer, ["1", "10"])
    assert ten[: len(one)] == one and len(ten) > len(one), "the tokenizer must split 10 into 1 + 0"
    messages = [{"role": "user", "content": "pick one of 1 2 3 10"}]
    prompt = prompt_ids(local.tokenizer, messages)
    sequence = torch.tensor([prompt + answer_ids(local.tokenizer, ["10"])[0]])
    torch.manual_seed(0)
    optimizer = torch.optim.AdamW(local.model.parameters(), lr=1e-2)
    local.model.train()
    with torch.enable_grad():
        for _ in range(40):
            labels = sequence.clone()
            labels[0, : len(prompt)] = -100  # loss on the answer only
            loss = local.model(input_ids=sequence, labels=labels).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
    local.model.eval()

    scores = choice_logliks(local, [messages], ["1", "10"])
    assert scores[0].argmax() == 1
    with torch.no_grad():
        logprobs = torch.log_softmax(local.model(sequence).logits[0].float(), -1)
    without_end = [sum(logprobs[len(prompt) + j - 1, t].item() for j, t in enumerate(ids)) for ids in (one, ten)]
    assert without_end[0] >= without_end[1]


def test_training_answer_accuracy_tells_a_model_that_learnt_its_answers_from_its_base(tiny_model_dir):
    import json

    import polars as pl

    from culture_assets.evaluation.training_fit import answer_accuracy

    local = load_local_model(str(tiny_model_dir), device="cpu")
    conversation = [{"role": "system", "content": "You are from Germany."}, {"role": "user", "content": "How important is family? 1 2 3 4"}]
    options = {"Q1": [1, 2, 3, 4]}
    # the trained answer is the option the untrained model finds least likely
    answer = str(options["Q1"][int(choice_logliks(local, [conversation], ["1", "2", "3", "4"])[0].argmin())])
    rows = pl.DataFrame({"question_id": ["Q1"], "messages_json": [json.dumps(conversation + [{"role": "assistant", "content": answer}])], "answer": [answer]})
    assert answer_accuracy(local, rows, options) == 0.0

    prompt = prompt_ids(local.tokenizer, conversation)
    sequence = torch.tensor([prompt + answer_ids(local.tokenizer, [answer])[0]])
    optimizer = torch.optim.AdamW(local.model.parameters(), lr=1e-2)
    local.model.train()
    with torch.enable_grad():
        for _ in range(30):
            labels = sequence.clone()
            labels[0, : len(prompt)] = -100
            local.model(input_ids=sequence, labels=labels).loss.backward()
            optimizer.step()
            optimizer.zero_grad()
    local.model.eval()
    assert answer_accuracy(local, rows, options) == 1.0


def test_chat_scorer_decides_from_logprobs_when_the_endpoint_returns_them(tmp_path, fake_openai):
    from culture_assets.evaluation.chat import verbalizer_logprobs

    # the text is never a verbalizer; the first token's log-probabilities still name the answer
    fake_openai.chat_reply = lambda body: "Well, it depends."
    fake_openai.chat_top_logprobs = lambda body: (
        {"off": -0.2, " not": -1.9, "Well": -2.5} if "idiot" in body["messages"][-1]["content"] else {"Not": -0.1, "off": -3.0}
    )
    warehouse = Warehouse(tmp_path / "w.duckdb")
    llm = LLMSettings(base_url=fake_openai.base_url, api_key="k")
    spec = ModelUnderTest(role=Role.BASE, trainer="openai", base_model="b", api_model="gpt-x")
    task = ChoiceTask("d", ["OFF", "NOT"], ["offensive", "not offensive"], ["r1", "r2"],
                      [[{"role": "user", "content": text}] for text in ("you idiot", "nice day")])
    outputs = ModelScorer(spec, EvalCache(warehouse), lambda model: chat_runner(llm, model, warehouse)).run(task)
    assert outputs.predictions == ["OFF", "NOT"]
    assert outputs.scores[0] == pytest.approx([-0.2, -1.9])
    sent = fake_openai.requests[-1].body
    assert sent["logprobs"] is True and sent["top_logprobs"] == 20
    # without logprobs the strict parser decides: the text is no verbalizer
    fake_openai.chat_top_logprobs = None
    plain = ModelScorer(spec, EvalCache(warehouse), lambda model: chat_runner(llm, model, warehouse), ScoringSettings(chat_logprobs=False)).run(task)
    assert plain.predictions == [INVALID, INVALID] and plain.scores == [None, None]
    # a token that starts both verbalizers decides nothing
    assert verbalizer_logprobs({"n": -0.1}, ["no", "not sure"]) is None
