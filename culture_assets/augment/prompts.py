"""The chat prompts of both augmentation steps and the judge, and the hash recorded in lineage."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Mapping, Sequence

SLOT_PATTERN = re.compile(r"\[x:([^\[\]]+)\]")  # a slot records the word it replaced: [x:proud]
TEMPLATE_EXAMPLE = (
    "Making my parents proud has been one of my main goals in life",
    "Making my parents [x:proud] has been one of my [x:main] [x:goals] in life",
)
JSON_SYSTEM = "You rewrite survey questions for a research dataset. Reply with one JSON object and nothing else."

Messages = list[dict[str, str]]


def prompt_hash(messages: Sequence[Mapping[str, str]]) -> str:
    """Identifies the prompt (not the model or sampling settings) in lineage rows."""
    return hashlib.sha256(json.dumps(list(messages), sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:16]


def _seed_lines(seed: str, scale: str) -> str:
    """The seed with its answer scale: the generator sees whether it is a statement or a question."""
    return f'Seed survey item: "{seed}"\nAnswer scale: {scale}\n' if scale else f'Seed survey item: "{seed}"\n'


# Each prompt puts its fixed instruction first and the item last: prompts of one batch then share a long
# head, which a local generator computes once (see shared_prefix.py) and an API may cache.
def paraphrase_messages(seed: str, n_paraphrases: int, scale: str = "") -> Messages:
    """Step 1: paraphrases of one seed item that keep its form (a statement stays a statement), in one JSON reply."""
    user = (
        f"Write {n_paraphrases} different sentences that say exactly the same thing as the seed item below, in the same form: "
        "if the seed is a statement that respondents agree or disagree with, write statements (not questions); "
        "if it is a question, write questions. The same answer scale must still fit each sentence. Vary the wording "
        "and the sentence structure; do not add, drop, negate or reverse anything, do not answer it, do not list answer options.\n"
        'Reply as JSON: {"paraphrases": ["...", ...]}\n\n'
        f"{_seed_lines(seed, scale)}"
    )
    return [{"role": "system", "content": JSON_SYSTEM}, {"role": "user", "content": user}]


def template_messages(seed: str, sentences: Sequence[str], scale: str = "") -> Messages:
    """Step 2a: one template per step-1 sentence (the seed among them), each slot recording the word it replaced."""
    numbered = "\n".join(f"{i}. {t}" for i, t in enumerate(sentences, start=1))
    example_sentence, example_template = TEMPLATE_EXAMPLE
    user = (
        "For each sentence below write a template: the sentence unchanged except that 1 to 3 replaceable words "
        "(nouns, verbs, adjectives, adverbs; never 'not', 'no' or a word that carries the negation) are each replaced "
        "by a slot [x:word] naming exactly the word it replaces.\n"
        f'Example: sentence "{example_sentence}" -> template "{example_template}"\n'
        'Reply as JSON: {"templates": [{"sentence": 1, "template": "..."}, ...]}\n\n'
        f"{_seed_lines(seed, scale)}\nSentences:\n{numbered}\n"
    )
    return [{"role": "system", "content": JSON_SYSTEM}, {"role": "user", "content": user}]


def synonym_messages(seed: str, templates: Sequence[str], fillings_per_template: int) -> Messages:
    """Step 2b: fill the slots of every template of one seed item with context-aware synonyms of their words."""
    numbered = "\n".join(f"{i}. {t}  ({len(SLOT_PATTERN.findall(t))} slots)" for i, t in enumerate(templates, start=1))
    user = (
        f"For each template below give {fillings_per_template} different fillings. A filling replaces every slot [x:word], in "
        "order, with a synonym of that word (a word or short phrase, not the word itself, never its opposite or "
        "its negation) chosen to fit the context, so the full sentence keeps the original meaning.\n"
        'Reply as JSON: {"fillings": [{"template": 1, "slots": ["...", "..."]}, ...]}\n\n'
        f'Original survey item: "{seed}"\n\nTemplates:\n{numbered}\n'
    )
    return [{"role": "system", "content": JSON_SYSTEM}, {"role": "user", "content": user}]


JUDGE_RUBRIC = """Rate how similar in meaning sentence B is to sentence A, from 1 to 5:
1: The sentences convey distinctly different ideas or concepts
2: Limited commonality in meaning, with noticeable disparities in wording
3: Some overlap in meaning, but notable differences in wording or phrasing
4: Minor variations in wording or structure, but the core meaning remains consistent
5: The sentences convey the same information using different words"""


def judge_messages(seed: str, variant: str) -> Messages:
    """The paper's 1-5 semantic-equivalence rubric (slide deck), answered as JSON."""
    user = f'{JUDGE_RUBRIC}\n\nA: "{seed}"\nB: "{variant}"\n\nReply as JSON: {{"score": <1-5>}}'
    return [{"role": "system", "content": "You are a careful annotator. Reply with one JSON object."}, {"role": "user", "content": user}]
