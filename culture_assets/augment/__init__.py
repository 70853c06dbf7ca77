"""Semantic data augmentation (the paper's two steps) as plain Python.

prompts -> one structured JSON call per seed question (paraphrases + [x] templates), strict
parsing (`responses`), step 2 slot filling with context-aware synonyms (`generation`), the
embedding filter with diverse selection (`semantic_filter`, `embedder`), lineage rows
(`lineage`) and the quality analyses: perplexity, diversity gain, LLM-as-judge (`quality`).
"""
