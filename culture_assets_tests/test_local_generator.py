"""The local generator on the tiny model: batches, schema-constrained JSON, seeds, max tokens, bad models."""

from __future__ import annotations

import json

import jsonschema
import pytest

from culture_assets.augment.prompts import paraphrase_messages
from culture_assets.llm import ChatRequest, ChatRunner
from culture_assets.resources.llm import LLMResource
from culture_assets.llm.errors import LLMModelError, LLMRequestError
from culture_assets.llm.generator import BatchChatGenerator
from culture_assets.llm.local_generator import LocalChatGenerator, end_of_reply_ids, decode_batch
from culture_assets.survey.questions import load_questions
from culture_assets_tests.hub_cache import DEFAULT_HUB_NAME

# short bounded strings, so even a random model's reply is complete within MAX_TOKENS (each token is >= 1 character)
SCHEMA = {
    "type": "object",
    "properties": {
        "paraphrases": {"type": "array", "items": {"type": "string", "minLength": 1, "maxLength": 8}, "minItems": 1, "maxItems": 2},
        "score": {"type": "integer", "minimum": 1, "maximum": 5},
        "topic": {"enum": ["family", "work", "religion"]},
    },
    "required": ["paraphrases", "score", "topic"],
    "additionalProperties": False,
}
JSON_SCHEMA = {"type": "json_schema", "json_schema": {"name": "reply", "schema": SCHEMA}}
MAX_TOKENS = 80  # the longest reply SCHEMA allows is 74 characters


def prompts(n: int) -> list[list[dict[str, str]]]:
    return [paraphrase_messages(q.text, 2, q.option_text()) for q in load_questions()[:n]]


@pytest.fixture(scope="module")
def generator(tiny_model_dir) -> LocalChatGenerator:
    return LocalChatGenerator(str(tiny_model_dir), batch_size=4, device="cpu")


def test_every_reply_in_a_batch_matches_the_schema(generator):
    params = {"temperature": 0.9, "max_tokens": MAX_TOKENS, "response_format": JSON_SCHEMA, "seed": 1}
    completions = generator.generate([(p, params) for p in prompts(5)])  # two batches, the second one short
    assert len(completions) == 5
    for completion in completions:
        jsonschema.validate(json.loads(completion.content), SCHEMA)
        assert completion.finish_reason == "stop" and 0 < completion.completion_tokens <= MAX_TOKENS
    # json_object (what the judge asks for) constrains to an object; without a format the random model writes no JSON
    [as_object] = generator.generate([(prompts(1)[0], {"max_tokens": MAX_TOKENS, "response_format": {"type": "json_object"}})])
    assert as_object.content.startswith("{") and (as_object.finish_reason == "length" or isinstance(json.loads(as_object.content), dict))


def test_batched_greedy_decoding_equals_one_at_a_time(generator):
    params = {"temperature": 0, "max_tokens": 12}
    requests = [(p, params) for p in prompts(3)] + [(p, {**params, "response_format": JSON_SCHEMA, "max_tokens": MAX_TOKENS}) for p in prompts(5)[3:]]
    batched = generator.generate(requests)
    alone = [generator.generate([request])[0] for request in requests]
    assert [c.content for c in batched] == [c.content for c in alone]
    assert len({c.prompt_tokens for c in batched}) > 1  # prompts of different lengths were padded together


def test_the_instruction_all_prompts_start_with_goes_through_the_model_once(generator):
    tokenizer, model = generator._load()
    requests = [(p, {"temperature": 0, "max_tokens": 12}) for p in prompts(3)]
    rows = [generator._row(tokenizer, model, messages, params) for messages, params in requests]
    shared = decode_batch(model, rows, pad_id=tokenizer.pad_token_id, stop_ids=end_of_reply_ids(tokenizer, model))
    # the chat template, system prompt and instruction come before the seed item (augment/prompts.py)
    assert shared > min(len(row.prompt) for row in rows) / 2
    alone = [generator.generate([request])[0].content for request in requests]
    assert [tokenizer.decode(row.tokens, skip_special_tokens=True).strip() for row in rows] == alone


def test_a_seed_gives_the_same_sample_in_any_batch(generator):
    prompt = prompts(1)[0]
    seeded = {"temperature": 1.0, "max_tokens": 20, "seed": 7}
    alone = generator.generate([(prompt, seeded)])[0].content
    in_a_batch = generator.generate([(p, {**seeded, "seed": 3}) for p in prompts(3)[1:]] + [(prompt, seeded)])[-1].content
    assert alone == in_a_batch
    other_seeds = {generator.generate([(prompt, {**seeded, "seed": seed})])[0].content for seed in range(4)}
    assert len(other_seeds) > 1  # the seed changes the sample


def test_max_tokens_is_honoured_and_an_unfinishable_schema_is_reported(generator, caplog):
    [short] = generator.generate([(prompts(1)[0], {"max_tokens": 5})])
    assert short.completion_tokens == 5 and short.finish_reason == "length"
    long_string = {"type": "object", "properties": {"text": {"type": "string", "minLength": 200}}, "required": ["text"]}
    fmt = {"type": "json_schema", "json_schema": {"name": "long", "schema": long_string}}
    [cut] = generator.generate([(prompts(1)[0], {"max_tokens": 10, "response_format": fmt})])
    assert cut.finish_reason == "length" and cut.completion_tokens == 10 and cut.content.startswith('{"text": "')
    with pytest.raises(json.JSONDecodeError):
        json.loads(cut.content)  # the caller's strict parser rejects it as malformed, keeping the raw text
    assert "cut at max_tokens=10 before its JSON document was complete" in caplog.text
    unsupported = {"type": "json_schema", "json_schema": {"name": "bad", "schema": {"type": "wat"}}}
    with pytest.raises(LLMRequestError, match=r"response_format: the JSON schema cannot be enforced: Invalid type: wat"):
        generator.generate([(prompts(1)[0], {"response_format": unsupported})])


def test_the_runner_sends_batches_to_the_local_model(generator):
    runner = ChatRunner(generator, concurrency=1)
    requests = [ChatRequest.of(p, {"temperature": 0, "max_tokens": MAX_TOKENS, "response_format": JSON_SCHEMA}, tag=i) for i, p in enumerate(prompts(5))]
    outcomes = runner.run(requests)  # a batch of 4, then 1
    assert [o.request.tag for o in outcomes] == list(range(5)) and runner.stats.sent == 5
    assert [o.content for o in outcomes] == [c.content for c in generator.generate([(r.messages, r.params) for r in requests])]
    assert all(jsonschema.validate(json.loads(o.content), SCHEMA) is None for o in outcomes)


def test_the_llm_resource_serves_a_hub_name_with_the_batched_generator(offline_hub):
    generator = LLMResource(local_model=DEFAULT_HUB_NAME, local_batch_size=8).generator()
    assert isinstance(generator, BatchChatGenerator) and generator.batch_size == 8
    [completion] = generator.generate([(prompts(1)[0], {"max_tokens": MAX_TOKENS, "response_format": JSON_SCHEMA})])
    jsonschema.validate(json.loads(completion.content), SCHEMA)


def test_models_the_generator_cannot_use_are_one_line_errors(offline_hub, no_chat_template_model_dir, tmp_path):
    with pytest.raises(LLMModelError, match=r"Qwen/Missing, field 'local_model': not in the Hugging Face cache .* HF_HUB_OFFLINE is set"):
        LocalChatGenerator("Qwen/Missing").generate([(prompts(1)[0], {})])
    with pytest.raises(LLMModelError, match=r"field 'chat_template': the tokenizer has no chat template"):
        LocalChatGenerator(str(no_chat_template_model_dir)).generate([(prompts(1)[0], {})])
    with pytest.raises(LLMModelError, match=r"field 'local_model': directory is not a transformers model"):
        LocalChatGenerator(str(tmp_path)).generate([(prompts(1)[0], {})])


def test_the_augmentation_reply_schemas_are_enforced(generator):
    from culture_assets.augment.responses import step1_response_format, step2_response_format, template_response_format

    step1, templates, step2 = generator.generate([
        (prompts(1)[0], {"max_tokens": 24, "response_format": step1_response_format(8)}),
        (prompts(1)[0], {"max_tokens": 24, "response_format": template_response_format(3)}),
        (prompts(1)[0], {"max_tokens": 24, "response_format": step2_response_format(2)}),
    ])
    assert step1.content.startswith('{"paraphrases": ["') and step2.content.startswith('{"fillings": [{"')
    assert templates.content.startswith('{"templates": [{"')
