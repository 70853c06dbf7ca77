"""The two LLM steps over all seed questions, batched through one ChatRunner.

Step 1 sends one request per seed question (shown with its answer scale, so a statement stays a
statement) asking for paraphrases. A question whose accepted paraphrases are still fewer than
`target_accepted` (too few above the threshold, or a malformed reply) is asked again with a new
sampling seed, up to `max_attempts` requests; each malformed reply is kept as a rejected row.
Then, as in the paper, step 2 works on the step-1 sentences: one request per seed question turns
the seed and its accepted paraphrases into templates whose slots record the word they replaced
([x:proud]); a template that does not restore its sentence is rejected. Step 2 then sends one
request per seed question filling all its templates; each filling is checked against the words
its slots replaced, and the resulting sentence's parent is the step-1 sentence it came from.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, replace
from typing import Callable, Optional, Sequence

from pydantic import BaseModel, ConfigDict, Field

from culture_assets.augment.candidates import Candidate, SeedQuestion, sample_id, seed_candidate, unique_by_id
from culture_assets.augment.embedder import Embedder
from culture_assets.augment.prompts import Messages, paraphrase_messages, prompt_hash, synonym_messages, template_messages
from culture_assets.augment.responses import (
    MalformedResponse,
    fill_template,
    filling_problem,
    parse_step1,
    parse_step2,
    parse_templates,
    slot_words,
    step1_response_format,
    step2_response_format,
    template_response_format,
    template_problem,
)
from culture_assets.augment.semantic_filter import SIMILARITY_THRESHOLD, below_threshold_reason, resolved_threshold
from culture_assets.llm import ChatOutcome, ChatRequest, ChatRunner

RAW_REPLY_CHARS = 500


class Step1Settings(BaseModel):
    """Step 1's settings (the paraphrases_and_templates asset's config derives its fields from these)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    n_paraphrases: int = Field(default=8, ge=1, description="Paraphrases asked for per request.")
    n_templates: int = Field(default=3, ge=0, description="Step-1 sentences (the seed, then the accepted paraphrases) made into [x:word] templates per question.")
    target_accepted: int = Field(default=5, ge=1, description="Ask again until this many paraphrases pass the threshold.")
    max_attempts: int = Field(default=3, ge=1, description="Requests per seed question at most.")
    similarity_threshold: Optional[float] = SIMILARITY_THRESHOLD
    temperature: float = Field(default=0.9, ge=0, description="Sampling temperature of the paraphrase and template requests.")
    max_tokens: int = Field(default=1024, ge=1, description="Completion cap per request.")
    max_questions: Optional[int] = Field(
        default=None, ge=1,
        description="Seed questions augmented (the first N in survey order); empty: all. `--limit N` sets N: the other questions train on their seed alone.",
    )


class Step2Settings(BaseModel):
    """Step 2's settings (the synonym_variants asset's config derives its fields from these)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    fillings_per_template: int = Field(default=4, ge=1, description="Fillings asked for per template.")
    max_attempts: int = Field(default=2, ge=1, description="Requests per seed question at most (retries after a malformed reply).")
    similarity_threshold: Optional[float] = SIMILARITY_THRESHOLD
    temperature: float = Field(default=0.9, ge=0, description="Sampling temperature of the filling requests.")
    max_tokens: int = Field(default=1024, ge=1, description="Completion cap per request.")


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


def form_problem(seed: str, text: str) -> str | None:
    """A statement to agree or disagree with must stay a statement: as a question it would carry an
    agree/disagree scale that no longer fits."""
    if not seed.rstrip().endswith("?") and text.rstrip().endswith("?"):
        return "a statement turned into a question"
    return None


def _score(candidates: list[Candidate], seeds: dict[str, SeedQuestion], embedder: Embedder, threshold: float) -> list[Candidate]:
    """Cosine to the seed for every sentence candidate, seeds and candidates encoded in one batch;
    a candidate below the threshold, or a statement turned into a question, is rejected."""
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
            problem = form_problem(seeds[c.question_id].text, c.text)
            if value < threshold:
                c = c.rejected(below_threshold_reason(value, threshold))
            elif problem:
                c = c.rejected(problem)
        scored.append(c)
    return scored


def paraphrase_step(seeds: Sequence[SeedQuestion], runner: ChatRunner, embedder: Embedder, settings: Step1Settings) -> tuple[StepResult, StepResult]:
    """Step 1 -> (paraphrase candidates, template candidates made from the step-1 sentences)."""
    seeds = seeds[: settings.max_questions]
    by_id = {s.question_id: s for s in seeds}
    seed_ids = {s.question_id: sample_id(s.question_id, "seed", s.text) for s in seeds}
    paraphrases: list[Candidate] = []
    accepted: dict[str, int] = defaultdict(int)
    requests = 0
    budget_exhausted = False
    model = runner.model
    step1_format = step1_response_format(settings.n_paraphrases)
    threshold = resolved_threshold(settings.similarity_threshold, embedder.encoder).value
    for attempt in range(settings.max_attempts):
        todo = [s for s in seeds if accepted[s.question_id] < settings.target_accepted]
        if not todo or budget_exhausted:
            break
        batch = []
        for seed in todo:
            messages = paraphrase_messages(seed.text, settings.n_paraphrases, seed.scale)
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
                texts = parse_step1(outcome.content)
            except MalformedResponse as error:
                paraphrases.append(_malformed(question_id, parent, "paraphrase", outcome, model, phash, error, attempt))
                continue
            for text in texts:
                fresh.append(Candidate(sample_id(question_id, "paraphrase", text), question_id, "paraphrase", text, parent, model, phash, None, True, None))
        known = {c.sample_id for c in paraphrases}
        fresh = [c for c in unique_by_id(fresh) if c.sample_id not in known]
        fresh = _score(fresh, by_id, embedder, threshold)
        paraphrases.extend(fresh)
        for c in fresh:
            accepted[c.question_id] += c.accepted
    templates = StepResult([], 0, budget_exhausted)
    if settings.n_templates and not budget_exhausted:
        templates = template_step(seeds, paraphrases, runner, settings)
    return (
        StepResult(paraphrases, requests + templates.requests, budget_exhausted or templates.budget_exhausted),
        StepResult(templates.candidates, requests + templates.requests, budget_exhausted or templates.budget_exhausted),
    )


def template_sources(seed: SeedQuestion, paraphrases: Sequence[Candidate], n: int) -> list[Candidate]:
    """The step-1 sentences templated for one question: the seed, then its accepted paraphrases
    most similar to the seed first, `n` in all."""
    own = sorted((c for c in paraphrases if c.question_id == seed.question_id and c.accepted), key=lambda c: -(c.similarity or 0.0))
    return ([seed_candidate(seed)] + own)[:n]


def _ask_until_parsed(
    todo: Sequence[str],
    request_for: Callable[[str], tuple[Messages, dict[str, object]]],
    read: Callable[[str, ChatOutcome, str], list[Candidate]],
    malformed_parent: Callable[[str], str],
    step: str,
    runner: ChatRunner,
    max_attempts: int,
    temperature: float,
    max_tokens: int,
) -> StepResult:
    """One request per question id (`request_for`: its messages and response format), asked again with a new
    sampling seed after a malformed reply, `max_attempts` requests at most. `read(question_id, outcome, prompt_hash)`
    turns a reply into candidate rows or raises MalformedResponse, which is kept as a rejected row of `step`
    under `malformed_parent(question_id)`. A reply the budget stopped ends the step."""
    rows: list[Candidate] = []
    requests = 0
    budget_exhausted = False
    for attempt in range(max_attempts):
        if not todo or budget_exhausted:
            break
        batch = []
        for question_id in todo:
            messages, response_format = request_for(question_id)
            batch.append(ChatRequest.of(messages, _params(temperature, max_tokens, attempt, response_format), tag=question_id))
        outcomes = runner.run(batch)
        requests += len(batch)
        retry: list[str] = []
        for outcome in outcomes:
            question_id = outcome.request.tag
            phash = prompt_hash(outcome.request.messages)
            if outcome.content is None:
                budget_exhausted = True
                continue
            try:
                rows.extend(read(question_id, outcome, phash))
            except MalformedResponse as error:
                rows.append(_malformed(question_id, malformed_parent(question_id), step, outcome, runner.model, phash, error, attempt))
                retry.append(question_id)
        todo = retry
    return StepResult(unique_by_id(rows), requests, budget_exhausted)


def template_step(seeds: Sequence[SeedQuestion], paraphrases: Sequence[Candidate], runner: ChatRunner, settings: Step1Settings) -> StepResult:
    """Step 2a: templates of the step-1 sentences, one request per seed question (asked again after a malformed reply)."""
    sources = {s.question_id: template_sources(s, paraphrases, settings.n_templates) for s in seeds}
    by_id = {s.question_id: s for s in seeds}

    def request_for(question_id: str) -> tuple[Messages, dict[str, object]]:
        seed = by_id[question_id]
        texts = [c.text for c in sources[question_id]]
        return template_messages(seed.text, texts, seed.scale), template_response_format(len(texts))

    def read(question_id: str, outcome: ChatOutcome, phash: str) -> list[Candidate]:
        owned = sources[question_id]
        replies, problems = parse_templates(outcome.content or "", len(owned))
        rows = []
        for reply in replies:
            source = owned[reply.sentence_index]
            problem = template_problem(reply.template, source.text)
            row = Candidate(sample_id(question_id, "template", reply.template), question_id, "template", reply.template, source.sample_id, runner.model, phash, None, True, None)
            rows.append(row.rejected(problem) if problem else row)
        for problem in problems:
            rows.append(Candidate(sample_id(question_id, "template", problem, outcome.key), question_id, "template", problem, owned[0].sample_id, runner.model, phash, None, False, f"unusable template: {problem}"))
        return rows

    return _ask_until_parsed(
        [s.question_id for s in seeds], request_for, read, lambda q: sources[q][0].sample_id, "template", runner,
        settings.max_attempts, settings.temperature, settings.max_tokens,
    )


def synonym_step(seeds: Sequence[SeedQuestion], templates: Sequence[Candidate], runner: ChatRunner, embedder: Embedder, settings: Step2Settings) -> StepResult:
    """Step 2b: full sentences from the accepted templates, one request per seed question (asked again after a malformed reply)."""
    by_id = {s.question_id: s for s in seeds}
    usable: dict[str, list[Candidate]] = defaultdict(list)
    for t in templates:
        if t.accepted and t.question_id in by_id:
            usable[t.question_id].append(t)

    def request_for(question_id: str) -> tuple[Messages, dict[str, object]]:
        owned = usable[question_id]
        messages = synonym_messages(by_id[question_id].text, [t.text for t in owned], settings.fillings_per_template)
        return messages, step2_response_format(len(owned))

    def read(question_id: str, outcome: ChatOutcome, phash: str) -> list[Candidate]:
        owned = usable[question_id]
        fillings, problems = parse_step2(outcome.content or "", [len(slot_words(t.text)) for t in owned])
        rows = []
        for filling in fillings:
            template = owned[filling.template_index]
            text = fill_template(template.text, filling.slots)
            # the parent is the step-1 sentence the template was made from
            row = Candidate(sample_id(question_id, "synonym", text), question_id, "synonym", text, template.parent_id, runner.model, phash, None, True, None)
            problem = filling_problem(filling.slots, slot_words(template.text))
            rows.append(row.rejected(f"unusable filling: {problem}") if problem else row)
        for problem in problems:
            rows.append(Candidate(sample_id(question_id, "synonym", problem, outcome.key), question_id, "synonym", problem, owned[0].parent_id, runner.model, phash, None, False, f"unusable filling: {problem}"))
        return rows

    result = _ask_until_parsed(
        sorted(usable), request_for, read, lambda q: usable[q][0].parent_id, "synonym", runner,
        settings.max_attempts, settings.temperature, settings.max_tokens,
    )
    threshold = resolved_threshold(settings.similarity_threshold, embedder.encoder).value
    return replace(result, candidates=_score(result.candidates, by_id, embedder, threshold))
