"""Canned but varied replies of an augmentation LLM, for the fake OpenAI server (tests and bench).

Replies are light rewordings of the seed question found in the prompt, so most pass a 0.8
MiniLM cosine, plus realistic faults: an off-topic sentence (fails the threshold), a copy of
the seed (a duplicate), a template without a slot, a template that does not restore its
sentence, a filling with the wrong slot count, a filling that repeats its word, and, on the
first attempt for some questions, a reply that is not JSON at all.
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
_SEED = re.compile(r'(?:Seed|Original) survey item: "(.*?)"', re.DOTALL)
_SENTENCE_LINE = re.compile(r"^(\d+)\. (.*)$", re.MULTILINE)
_TEMPLATE_LINE = re.compile(r"^(\d+)\. (.*)  \((\d+) slots\)$", re.MULTILINE)


def _hash(text: str) -> int:
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)


def _count(pattern: str, text: str, default: int) -> int:
    found = re.search(pattern, text)
    return int(found.group(1)) if found else default


FRAMES = [
    "{lead}: {body}", "Do you agree that {body}?", "Would you say that {body}?", "{Body}. Do you agree?",
    "How do you feel about this statement: {body}", "Some people say that {body}. What do you think?",
    "Is it true that {body}?", "{Body}, would you agree?", "To what extent do you agree that {body}?",
    "Please rate this statement: {body}", "{Body}. Is that your view?", "Would you agree that {body}?",
]


# statements stay statements, as the prompt asks; one frame turns it into a question (a fault the check rejects)
STATEMENT_FRAMES = [
    "{lead}: {body}", "It is often argued that {body}.", "It is said that {body}.", "{Body}, as some people say.",
    "Do you agree that {body}?", "The statement is: {body}.", "{Body}.", "{Body}: that is the view.", "Some people hold that {body}.",
    "In the view of many, {body}.", "One could argue that {body}.", "A common opinion is that {body}.",
    "There are those who think that {body}.", "People sometimes claim that {body}.", "According to some, {body}.",
]


# from the 25th rewording on (only a run that asks for many paraphrases gets there) a closing sentence
# follows the frame, so a long seed still yields enough variants that are not near-duplicates of each other
RICH_FROM = 24
CLOSINGS = [
    "Please answer for yourself.", "There is no right or wrong answer here.", "Think of the country you live in.",
    "Give us your honest opinion.", "We are interested in your personal view.", "Your answer stays anonymous.",
    "Take a moment before answering.", "Answer as you really feel.", "Answer on the scale below.",
    "Only your own view matters here.", "Say what you believe, not what others expect.",
]


def _reworded(seed: str, i: int) -> str:
    """The i-th light rewording: a different frame around the statement, for odd i up to two words
    swapped for synonyms, and from the RICH_FROM-th on a closing sentence."""
    framed = _framed(seed, i)
    turned_into_question = not seed.rstrip().endswith("?") and framed.endswith("?")  # left as the fault the form check rejects
    if i < RICH_FROM or turned_into_question:
        return framed
    ended = framed if framed[-1] in ".?!" else f"{framed}."
    return f"{ended} {CLOSINGS[(i - RICH_FROM) % len(CLOSINGS)]}"


def _framed(seed: str, i: int) -> str:
    body = seed.rstrip("?.!")
    body = body[0].lower() + body[1:] if body[:2] != body[:2].upper() else body
    if i % 2:
        words, swapped = body.split(" "), 0
        for k, w in enumerate(words):
            if w.lower() in SYNONYMS and swapped < 2:
                words[k] = SYNONYMS[w.lower()][i % len(SYNONYMS[w.lower()])]
                swapped += 1
        body = " ".join(words)
    if ": " in body and i % 3 == 2:  # "stem: item" questions: put the item first
        stem, item = body.split(": ", 1)
        return f"{item[0].upper() + item[1:]}: {stem}?" if i % 2 else f"Thinking of this ({item}): {stem}?"
    frames = FRAMES if seed.rstrip().endswith("?") else STATEMENT_FRAMES
    frame = frames[i % len(frames)]
    return frame.format(lead=PREFIXES[i % len(PREFIXES)], body=body, Body=body[0].upper() + body[1:])


def slot_template(sentence: str, max_slots: int = 2) -> str | None:
    """The sentence with up to `max_slots` words that have a synonym marked as [x:word]."""
    words = sentence.split(" ")
    slots = [i for i, w in enumerate(words) if w.lower() in SYNONYMS][:max_slots]
    if not slots:
        return None
    return " ".join(f"[x:{w}]" if i in slots else w for i, w in enumerate(words))


def step1_reply(seed: str, n_paraphrases: int, attempt: int) -> str:
    if attempt == 0 and _hash(seed) % 7 == 0:
        return "Sure! Here are some paraphrases of your question:\n1. " + _reworded(seed, 0)
    paraphrases = [_reworded(seed, i + attempt * n_paraphrases) for i in range(max(n_paraphrases - 2, 1))]
    paraphrases += [seed.upper() + "?", OFF_TOPIC][: max(n_paraphrases - len(paraphrases), 0)]
    return json.dumps({"paraphrases": paraphrases})


def template_reply(seed: str, sentences: list[str]) -> str:
    entries = [{"sentence": n, "template": t} for n, sentence in enumerate(sentences, start=1) if (t := slot_template(sentence))]
    if _hash(seed) % 5 == 0:
        entries.append({"sentence": 1, "template": sentences[0]})  # forgot the slots
    if _hash(seed) % 3 == 0 and entries:
        entries.append({"sentence": 1, "template": entries[0]["template"] + " today"})  # does not restore its sentence
    return json.dumps({"templates": entries})


def step2_reply(seed: str, templates: list[tuple[str, int]], fillings: int, attempt: int) -> str:
    if attempt == 0 and _hash(seed) % 9 == 0:
        return json.dumps({"fillings": "I could not do that"})
    entries: list[dict[str, Any]] = []
    for number, (template, slots) in enumerate(templates, start=1):
        originals = re.findall(r"\[x:([^\]]+)\]", template)
        for j in range(fillings):
            words = []
            for s, word in enumerate(originals):
                choices = SYNONYMS.get(word.lower(), ["something"])
                words.append(choices[(j + s) % len(choices)])
            entries.append({"template": number, "slots": words})
    if templates and _hash(seed) % 4 == 0:
        entries.append({"template": 1, "slots": ["only"] * (templates[0][1] + 1)})
    if templates and _hash(seed) % 2 == 0:
        entries.append({"template": 1, "slots": re.findall(r"\[x:([^\]]+)\]", templates[0][0])})  # the words themselves
    return json.dumps({"fillings": entries})


def judge_reply(seed: str, variant: str, faults: bool = True) -> str:
    if faults and _hash(seed + "\x1f" + variant) % 11 == 0:
        return "I'd say five"
    # symmetric (the filter asks both ways): the share of the shorter sentence's words found in the other
    a, b = set(seed.lower().split()), set(variant.lower().split())
    overlap = len(a & b) / max(min(len(a), len(b)), 1)
    return json.dumps({"score": 5 if overlap > 0.8 else 4 if overlap > 0.5 else 3})


def translation_reply(language: str, text: str) -> str:
    """A marked "translation" (the language in brackets before the text); into English, the mark comes off."""
    if language == "English":
        return re.sub(r"^\[\w+\] ", "", text)
    return f"[{language}] {text}"


def augmentation_chat_reply(body: dict[str, Any], judge_faults: bool = True) -> str:
    """The fake server's chat_reply for the augmentation prompts (step 1, step 2, judge); `judge_faults` makes
    one judgement in eleven unparseable (the tests of the judge's failure handling want it; a whole run does not)."""
    prompt = body["messages"][-1]["content"]
    attempt = int(body.get("seed", 0) or 0)
    seed = _SEED.search(prompt)
    if "Templates:" in prompt and seed:
        templates = [(m.group(2), int(m.group(3))) for m in _TEMPLATE_LINE.finditer(prompt)]
        return step2_reply(seed.group(1), templates, _count(r"give (\d+) different fillings", prompt, 3), attempt)
    if "Sentences:" in prompt and seed:
        listed = prompt.split("Sentences:\n", 1)[1].split("\n\n", 1)[0]
        return template_reply(seed.group(1), [m.group(2) for m in _SENTENCE_LINE.finditer(listed)])
    if seed:
        return step1_reply(seed.group(1), _count(r"Write (\d+) different sentences", prompt, 5), attempt)
    translate = re.search(r'Translate this survey item into (\w+)\..*?Item: "(.*?)"', prompt, re.DOTALL)
    if translate:
        return json.dumps({"translation": translation_reply(translate.group(1), translate.group(2))})
    pair = re.search(r'A: "(.*?)"\nB: "(.*?)"', prompt, re.DOTALL)
    if pair:
        return judge_reply(pair.group(1), pair.group(2), judge_faults)
    return "I do not understand the request."
