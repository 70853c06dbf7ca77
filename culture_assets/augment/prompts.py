"""The chat prompts of both augmentation steps, and the hash recorded in lineage."""

from __future__ import annotations

import hashlib
import json
from typing import Mapping, Sequence

SLOT = "[x]"
SLIDE_TEMPLATE_EXAMPLE = "Do you agree with the [x] to bring [x] to my parents has been a [x] life [x] of mine?"
JSON_SYSTEM = "You rewrite survey questions for a research dataset. Reply with one JSON object and nothing else."

Messages = list[dict[str, str]]


def prompt_hash(messages: Sequence[Mapping[str, str]]) -> str:
    """Identifies the prompt (not the model or sampling settings) in lineage rows."""
    return hashlib.sha256(json.dumps(list(messages), sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:16]


def paraphrase_messages(seed: str, n_paraphrases: int, n_templates: int) -> Messages:
    """Step 1: several paraphrases and several [x] templates of one seed question, in one JSON reply."""
    user = (
        f'Seed survey question: "{seed}"\n\n'
        f"1. Write {n_paraphrases} different sentences that ask exactly the same thing as the seed question, "
        "so that the same answer scale still fits. Vary the wording and the sentence structure; "
        "do not add or drop information, do not answer it, do not list answer options.\n"
        f"2. Write {n_templates} templates: copies of the seed question in which replaceable words "
        f"(nouns, verbs, adjectives, adverbs) are replaced by the slot marker {SLOT}. "
        f'Example template: "{SLIDE_TEMPLATE_EXAMPLE}"\n\n'
        'Reply as JSON: {"paraphrases": ["...", ...], "templates": ["...", ...]}'
    )
    return [{"role": "system", "content": JSON_SYSTEM}, {"role": "user", "content": user}]


def synonym_messages(seed: str, templates: Sequence[str], fillings_per_template: int) -> Messages:
    """Step 2: fill the [x] slots of every template of one seed question with context-aware synonyms."""
    numbered = "\n".join(f"{i}. {t}  ({t.count(SLOT)} slots)" for i, t in enumerate(templates, start=1))
    user = (
        f'Original survey question: "{seed}"\n\nTemplates:\n{numbered}\n\n'
        f"For each template give {fillings_per_template} different fillings. A filling replaces every {SLOT}, in "
        "order, with a word or short phrase that is a synonym of the word it replaced in the original question, "
        "chosen to fit the context, so the full sentence keeps the original meaning.\n\n"
        'Reply as JSON: {"fillings": [{"template": 1, "slots": ["...", "..."]}, ...]}'
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
