"""The two LLM steps over all seed questions, batched through one ChatRunner.

Step 1 sends one request per seed question asking for paraphrases and [x] templates in one
JSON reply. A question whose accepted paraphrases are still fewer than `target_accepted` (too
few above the threshold, or a malformed reply) is asked again with a new sampling seed, up to
`max_attempts` requests; each malformed reply is kept as a rejected row with its reason.
Step 2 sends one request per seed question filling all its templates at once.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, replace
from typing import Sequence

from culture_assets.augment.candidates import Candidate, SeedQuestion, sample_id, unique_by_id
from culture_assets.augment.embedder import Embedder
from culture_assets.augment.prompts import SLOT, paraphrase_messages, prompt_hash, synonym_messages
from culture_assets.augment.responses import MalformedResponse, fill_template, parse_step1, parse_step2, step1_response_format, step2_response_format
from culture_assets.augment.semantic_filter import DEFAULT_THRESHOLD, below_threshold_reason
from culture_assets.llm import ChatOutcome, ChatRequest, ChatRunner

RAW_REPLY_CHARS = 500


@dataclass(frozen=True)
class Step1Settings:
    n_paraphrases: int = 8
    n_templates: int = 2
    target_accepted: int = 5
    max_attempts: int = 3
    threshold: float = DEFAULT_THRESHOLD
    temperature: float = 0.9
    max_tokens: int = 1024


@dataclass(frozen=True)
class Step2Settings:
    fillings_per_template: int = 4
    max_attempts: int = 2
    threshold: float = DEFAULT_THRESHOLD
    temperature: float = 0.9
    max_tokens: int = 1024


@dataclass(frozen=True)
class StepResult:
    candidates: list[Candidate]
    requests: int
    budget_exhausted: bool


def _params(temperature: float, max_tokens: int, attempt: int, response_format: dict[str, object]) -> dict[str, object]:
    return {"temperature": temperature, "max_tokens": max_tokens, "response_format": response_format, "seed": attempt}


def _malformed(question_id: str, parent_id: str, step: str, outcome: ChatOutcome, model: str, phash: str, error: Exception, attempt: int) -> Candidate:
    raw = (outcome.content or "")[:RAW_REPLY_CHARS] or "<empty reply>"
    reason = f"malformed response (attempt {attempt + 1}): {error}"
    return Candidate(sample_id(question_id, step, raw, outcome.key), question_id, step, raw, parent_id, model, phash, None, False, reason)


def _score(candidates: list[Candidate], seeds: dict[str, SeedQuestion], embedder: Embedder, threshold: float) -> list[Candidate]:
    """Cosine to the seed for every sentence candidate, seeds and candidates encoded in one batch."""
    sentences = [c for c in candidates if c.similarity is None and c.accepted]
    if not sentences:
        return candidates
    texts = [seeds[c.question_id].text for c in sentences] + [c.text for c in sentences]
    vectors = embedder.encode(texts)
    n = len(sentences)
    similarity = {c.sample_id: float(vectors[i] @ vectors[n + i]) for i, c in enumerate(sentences)}
    scored = []
    for c in candidates:
        if c.sample_id in similarity:
            value = similarity[c.sample_id]
            c = replace(c, similarity=value)
            if value < threshold:
                c = c.rejected(below_threshold_reason(value, threshold))
        scored.append(c)
    return scored


def paraphrase_step(seeds: Sequence[SeedQuestion], runner: ChatRunner, embedder: Embedder, settings: Step1Settings) -> tuple[StepResult, StepResult]:
    """Step 1 -> (paraphrase candidates, template candidates)."""
    by_id = {s.question_id: s for s in seeds}
    seed_ids = {s.question_id: sample_id(s.question_id, "seed", s.text) for s in seeds}
    paraphrases: list[Candidate] = []
    templates: list[Candidate] = []
    accepted: dict[str, int] = defaultdict(int)
    requests = 0
    budget_exhausted = False
    model = runner.model
    step1_format = step1_response_format(settings.n_paraphrases, settings.n_templates)
    for attempt in range(settings.max_attempts):
        todo = [s for s in seeds if accepted[s.question_id] < settings.target_accepted]
        if not todo or budget_exhausted:
            break
        batch = []
        for seed in todo:
            messages = paraphrase_messages(seed.text, settings.n_paraphrases, settings.n_templates)
            batch.append(ChatRequest.of(messages, _params(settings.temperature, settings.max_tokens, attempt, step1_format), tag=seed.question_id))
        outcomes = runner.run(batch)
        requests += len(batch)
        fresh: list[Candidate] = []
        for outcome in outcomes:
            question_id = outcome.request.tag
            parent = seed_ids[question_id]
            phash = prompt_hash(outcome.request.messages)
            if outcome.content is None:
                budget_exhausted = True
                continue
            try:
                reply = parse_step1(outcome.content)
            except MalformedResponse as error:
                paraphrases.append(_malformed(question_id, parent, "paraphrase", outcome, model, phash, error, attempt))
                continue
            for text in reply.paraphrases:
                fresh.append(Candidate(sample_id(question_id, "paraphrase", text), question_id, "paraphrase", text, parent, model, phash, None, True, None))
            for text in reply.templates:
                templates.append(Candidate(sample_id(question_id, "template", text), question_id, "template", text, parent, model, phash, None, True, None))
            for text in reply.invalid_templates:
                templates.append(Candidate(sample_id(question_id, "template", text), question_id, "template", text, parent, model, phash, None, False, f"template has no {SLOT} slot"))
        known = {c.sample_id for c in paraphrases}
        fresh = [c for c in unique_by_id(fresh) if c.sample_id not in known]
        fresh = _score(fresh, by_id, embedder, settings.threshold)
        paraphrases.extend(fresh)
        for c in fresh:
            accepted[c.question_id] += c.accepted
    return (
        StepResult(paraphrases, requests, budget_exhausted),
        StepResult(_cap_templates(unique_by_id(templates), settings.n_templates), requests, budget_exhausted),
    )


def _cap_templates(templates: list[Candidate], per_question: int) -> list[Candidate]:
    used: dict[str, int] = defaultdict(int)
    capped = []
    for t in templates:
        if t.accepted and used[t.question_id] >= per_question:
            t = t.rejected(f"not used: {per_question} templates already taken for this question")
        elif t.accepted:
            used[t.question_id] += 1
        capped.append(t)
    return capped


def synonym_step(seeds: Sequence[SeedQuestion], templates: Sequence[Candidate], runner: ChatRunner, embedder: Embedder, settings: Step2Settings) -> StepResult:
    """Step 2: full sentences from the accepted templates, one request per seed question."""
    by_id = {s.question_id: s for s in seeds}
    usable: dict[str, list[Candidate]] = defaultdict(list)
    for t in templates:
        if t.accepted and t.question_id in by_id:
            usable[t.question_id].append(t)
    results: list[Candidate] = []
    requests = 0
    budget_exhausted = False
    model = runner.model
    todo = sorted(usable)
    for attempt in range(settings.max_attempts):
        if not todo or budget_exhausted:
            break
        batch = [
            ChatRequest.of(
                synonym_messages(by_id[q].text, [t.text for t in usable[q]], settings.fillings_per_template),
                _params(settings.temperature, settings.max_tokens, attempt, step2_response_format(len(usable[q]))),
                tag=q,
            )
            for q in todo
        ]
        outcomes = runner.run(batch)
        requests += len(batch)
        retry: list[str] = []
        for outcome in outcomes:
            question_id = outcome.request.tag
            owned = usable[question_id]
            phash = prompt_hash(outcome.request.messages)
            if outcome.content is None:
                budget_exhausted = True
                continue
            try:
                fillings, problems = parse_step2(outcome.content, [t.text.count(SLOT) for t in owned])
            except MalformedResponse as error:
                results.append(_malformed(question_id, owned[0].sample_id, "synonym", outcome, model, phash, error, attempt))
                retry.append(question_id)
                continue
            for filling in fillings:
                template = owned[filling.template_index]
                text = fill_template(template.text, filling.slots)
                results.append(Candidate(sample_id(question_id, "synonym", text), question_id, "synonym", text, template.sample_id, model, phash, None, True, None))
            for problem in problems:
                results.append(Candidate(sample_id(question_id, "synonym", problem, outcome.key), question_id, "synonym", problem, owned[0].sample_id, model, phash, None, False, f"unusable filling: {problem}"))
        todo = retry
    return StepResult(_score(unique_by_id(results), by_id, embedder, settings.threshold), requests, budget_exhausted)
