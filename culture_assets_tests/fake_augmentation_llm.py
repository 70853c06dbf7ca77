"""Canned but varied replies of an augmentation LLM, for the fake OpenAI server (tests and bench).

Replies are light rewordings of the seed question found in the prompt, so most pass a 0.8
MiniLM cosine, plus realistic faults: an off-topic sentence (fails the threshold), a copy of
the seed (a duplicate), a template without a slot, a filling with the wrong slot count, and,
on the first attempt for some questions, a reply that is not JSON at all.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

PREFIXES = [
    "Tell me", "I would like to know", "Please say", "In your opinion", "Could you tell me", "Let me ask you",
    "Honestly", "For this survey", "Thinking about it", "We would like to know", "Please consider", "Say frankly",
    "Quick question", "Answer this", "Be honest", "In your own view",
]
SYNONYMS = {
    "important": ["significant", "essential"], "main": ["primary", "chief"], "goals": ["aims", "objectives"],
    "proud": ["pleased"], "suffer": ["struggle"], "better": ["superior"], "leaders": ["chiefs"],
    "education": ["schooling"], "scarce": ["limited", "rare"], "priority": ["precedence"], "problems": ["trouble", "difficulties"],
    "duty": ["obligation", "responsibility"], "society": ["the community"], "frequently": ["often"], "occur": ["happen"],
    "neighborhood": ["neighbourhood", "local area"], "country": ["nation"], "effects": ["consequences", "impacts"],
    "increases": ["raises"], "government": ["state"], "fair": ["just"], "fairly": ["justly"], "elections": ["votes"],
    "science": ["scientific research"], "religion": ["faith"], "lives": ["existence"], "opportunities": ["chances"],
    "people": ["individuals", "persons"], "work": ["labour"], "children": ["kids"], "always": ["invariably"],
    "right": ["correct"], "employers": ["companies"], "strengthens": ["reinforces"], "leads": ["contributes"],
}
OFF_TOPIC = "What is your favourite colour of bicycle?"
_SEED = re.compile(r'(?:Seed|Original) survey question: "(.*?)"', re.DOTALL)
_TEMPLATE_LINE = re.compile(r"^(\d+)\. (.*)  \((\d+) slots\)$", re.MULTILINE)


def _hash(text: str) -> int:
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)


def _count(pattern: str, text: str, default: int) -> int:
    found = re.search(pattern, text)
    return int(found.group(1)) if found else default


def _reworded(seed: str, i: int) -> str:
    """The i-th light rewording: a different lead-in, and for odd i synonyms swapped in."""
    body = seed[0].lower() + seed[1:] if seed[:2] != seed[:2].upper() else seed
    if i % 2:
        body = " ".join(SYNONYMS[w.lower()][i % len(SYNONYMS[w.lower()])] if w.lower() in SYNONYMS else w for w in body.split(" "))
    return f"{PREFIXES[i % len(PREFIXES)]}: {body}"


def slot_template(seed: str, max_slots: int = 2) -> str | None:
    words = seed.split(" ")
    slots = [i for i, w in enumerate(words) if w.lower() in SYNONYMS][:max_slots]
    if not slots:
        return None
    return " ".join("[x]" if i in slots else w for i, w in enumerate(words))


def step1_reply(seed: str, n_paraphrases: int, n_templates: int, attempt: int) -> str:
    if attempt == 0 and _hash(seed) % 7 == 0:
        return "Sure! Here are some paraphrases of your question:\n1. " + _reworded(seed, 0)
    paraphrases = [_reworded(seed, i + attempt * n_paraphrases) for i in range(max(n_paraphrases - 2, 1))]
    paraphrases += [seed.upper() + "?", OFF_TOPIC][: max(n_paraphrases - len(paraphrases), 0)]
    templates = [t for t in (slot_template(seed), "[x] " + seed) if t][: max(n_templates, 0)]
    if _hash(seed) % 5 == 0:
        templates.append(seed)  # forgot the slots
    return json.dumps({"paraphrases": paraphrases, "templates": templates})


def _original_words(seed: str, template: str) -> list[str] | None:
    pattern = "^" + "(.+?)".join(re.escape(part) for part in template.split("[x]")) + "$"
    found = re.match(pattern, seed)
    return list(found.groups()) if found else None


def step2_reply(seed: str, templates: list[tuple[str, int]], fillings: int, attempt: int) -> str:
    if attempt == 0 and _hash(seed) % 9 == 0:
        return json.dumps({"fillings": "I could not do that"})
    entries: list[dict[str, Any]] = []
    for number, (template, slots) in enumerate(templates, start=1):
        originals = _original_words(seed, template)
        for j in range(fillings):
            if template.startswith("[x] ") and slots == 1:
                words = [PREFIXES[(j + 5) % len(PREFIXES)] + ":"]
            elif originals is not None:
                words = []
                for s, word in enumerate(originals):
                    choices = [word] + SYNONYMS.get(word.lower(), [])
                    words.append(choices[(j + s + 1) % len(choices)])
            else:
                words = ["something"] * slots
            entries.append({"template": number, "slots": words})
    if templates and _hash(seed) % 4 == 0:
        entries.append({"template": 1, "slots": ["only"] * (templates[0][1] + 1)})
    return json.dumps({"fillings": entries})


def judge_reply(seed: str, variant: str) -> str:
    if _hash(variant) % 11 == 0:
        return "I'd say five"
    overlap = len(set(seed.lower().split()) & set(variant.lower().split())) / max(len(set(seed.lower().split())), 1)
    return json.dumps({"score": 5 if overlap > 0.8 else 4 if overlap > 0.5 else 3})


def augmentation_chat_reply(body: dict[str, Any]) -> str:
    """The fake server's chat_reply for the augmentation prompts (step 1, step 2, judge)."""
    prompt = body["messages"][-1]["content"]
    attempt = int(body.get("seed", 0) or 0)
    seed = _SEED.search(prompt)
    if "Templates:" in prompt and seed:
        templates = [(m.group(2), int(m.group(3))) for m in _TEMPLATE_LINE.finditer(prompt)]
        return step2_reply(seed.group(1), templates, _count(r"give (\d+) different fillings", prompt, 3), attempt)
    if seed:
        return step1_reply(seed.group(1), _count(r"Write (\d+) different sentences", prompt, 5), _count(r"Write (\d+) templates", prompt, 2), attempt)
    pair = re.search(r'A: "(.*?)"\nB: "(.*?)"', prompt, re.DOTALL)
    if pair:
        return judge_reply(pair.group(1), pair.group(2))
    return "I do not understand the request."
