"""Hand-written variants of real seed questions that keep or invert their meaning, and a tiny NLI
cross-encoder taught the fixture's entailment labels (a stand-in for a real NLI model).

INVERSIONS are negations, antonym swaps and role swaps: trained with the seed's answer they would
teach the opposite attitude, and MiniLM puts most of them above the 0.8 cosine cut. ONE_WAY are
variants that entail the seed only in one direction (stronger or weaker claims): a check that asks
only one way lets one of them through. PARAPHRASES say the same thing in other words.
"""

from __future__ import annotations

from pathlib import Path

from culture_assets.survey.questions import load_questions

SEED_IDS = ("Q29", "Q34", "Q37", "Q158", "Q169")

INVERSIONS: dict[str, list[str]] = {
    "Q29": [
        "On the whole, men do not make better political leaders than women do",
        "On the whole, women make better political leaders than men do",
        "On the whole, men make worse political leaders than women do",
    ],
    "Q34": [
        "When jobs are scarce, employers should give priority to immigrants over people of this country",
        "When jobs are scarce, employers should not give priority to people of this country over immigrants",
        "When jobs are plentiful, employers should give priority to people of this country over immigrants",
    ],
    "Q37": [
        "It is not a duty towards society to have children",
        "It is a duty towards society not to have children",
    ],
    "Q158": [
        "Science and technology are making our lives unhealthier, harder, and less comfortable.",
        "Science and technology are not making our lives healthier, easier, and more comfortable.",
    ],
    "Q169": [
        "Whenever science and religion conflict, science is always right",
        "Whenever science and religion conflict, religion is never right",
    ],
}

# (variant, does the seed entail it, does it entail the seed)
ONE_WAY: dict[str, list[tuple[str, bool, bool]]] = {
    "Q29": [("On the whole, men sometimes make better political leaders than women do", True, False)],
    "Q34": [("Employers should always give priority to people of this country over immigrants", False, True)],
}

PARAPHRASES: dict[str, list[str]] = {
    "Q29": [
        "Generally speaking, men are better political leaders than women are",
        "By and large, men make better leaders in politics than women do",
    ],
    "Q34": [
        "When there are few jobs, employers should prefer people of this country to immigrants",
        "When jobs are scarce, employers ought to favour the people of this country over immigrants",
    ],
    "Q37": [
        "Having children is a duty towards society",
        "People have a duty to society to have children",
    ],
    "Q158": [
        "Science and technology make our lives healthier, easier and more comfortable.",
        "Our lives are becoming healthier, easier and more comfortable thanks to science and technology.",
    ],
    "Q169": [
        "When science and religion disagree, religion is always right",
        "Religion is always right whenever it conflicts with science",
    ],
}

CONTRADICTION, ENTAILMENT, NEUTRAL = 0, 1, 2
LABELS = {CONTRADICTION: "contradiction", ENTAILMENT: "entailment", NEUTRAL: "neutral"}  # the order of cross-encoder/nli-*


def seed_texts() -> dict[str, str]:
    return {q.id: q.text for q in load_questions() if q.id in SEED_IDS}


def labelled_pairs() -> list[tuple[str, str, int]]:
    """(premise, hypothesis, label) in both directions for every fixture variant."""
    seeds = seed_texts()
    pairs: list[tuple[str, str, int]] = []
    for question_id, seed in seeds.items():
        pairs.append((seed, seed, ENTAILMENT))
        for text in PARAPHRASES[question_id]:
            pairs += [(seed, text, ENTAILMENT), (text, seed, ENTAILMENT)]
        for text in INVERSIONS[question_id]:
            pairs += [(seed, text, CONTRADICTION), (text, seed, CONTRADICTION)]
        for text, forward, backward in ONE_WAY.get(question_id, []):
            pairs += [(seed, text, ENTAILMENT if forward else NEUTRAL), (text, seed, ENTAILMENT if backward else NEUTRAL)]
    return pairs


def judge_chat_reply(body: dict) -> str:
    """A fake judge for the fake OpenAI server: rates a fixture pair by its label, in the order asked
    (entailment 5, neutral 3, contradiction 1); any other pair gets a reply that is not a rating."""
    import json
    import re

    labels = {(a, b): label for a, b, label in labelled_pairs()}
    pair = re.search(r'A: "(.*?)"\nB: "(.*?)"', body["messages"][-1]["content"], re.DOTALL)
    label = labels.get((pair.group(1), pair.group(2))) if pair else None
    return "I cannot rate that" if label is None else json.dumps({"score": {ENTAILMENT: 5, NEUTRAL: 3, CONTRADICTION: 1}[label]})


def _untrained_tiny_nli(seed: int = 0):
    """A random 2-layer BERT cross-encoder with a word-level tokenizer over the fixture's words."""
    import torch
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import BertConfig, BertForSequenceClassification, PreTrainedTokenizerFast

    pairs = labelled_pairs()
    core = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    core.normalizer = normalizers.Lowercase()
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    core.train_from_iterator([t for p in pairs for t in p[:2]], trainers.WordLevelTrainer(special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]"]))
    cls, sep = core.token_to_id("[CLS]"), core.token_to_id("[SEP]")
    core.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", cls), ("[SEP]", sep)]
    )
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]", model_max_length=128)

    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(tokenizer), hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
        max_position_embeddings=128, num_labels=3, id2label=LABELS, label2id={v: k for k, v in LABELS.items()},
        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
    )
    return tokenizer, BertForSequenceClassification(config)


def build_tiny_nli(target: Path, steps: int = 300, seed: int = 0) -> Path:
    """The tiny cross-encoder trained until it reproduces the fixture's labels; saved as a
    sentence-transformers CrossEncoder loads it."""
    import torch

    pairs = labelled_pairs()
    tokenizer, model = _untrained_tiny_nli(seed)
    batch = tokenizer([p[0] for p in pairs], [p[1] for p in pairs], padding=True, return_tensors="pt")
    labels = torch.tensor([p[2] for p in pairs])
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)
    model.train()
    for _ in range(steps):
        loss = model(**batch, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if loss.item() < 0.01:
            break
    model.eval()
    with torch.no_grad():
        predicted = model(**batch).logits.argmax(-1)
    assert bool((predicted == labels).all()), "the tiny NLI model did not learn the fixture's labels"
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)
    return target


def build_entailing_nli(target: Path) -> Path:
    """The tiny NLI cross-encoder's architecture and tokenizer with a classifier that says "entailment" for every pair.

    A hub stand-in for runs whose subject is not the meaning check (the default profile end to end): the
    check still loads the model by its hub name and asks it both ways, and every candidate passes it.
    The check's rejections are tested with `build_tiny_nli`.
    """
    import torch

    tokenizer, model = _untrained_tiny_nli()
    with torch.no_grad():
        model.classifier.weight.zero_()
        model.classifier.bias.copy_(torch.tensor([10.0 if label == ENTAILMENT else 0.0 for label in sorted(LABELS)]))
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)
    return target

