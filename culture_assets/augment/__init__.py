"""Semantic data augmentation (the paper's two steps) as plain Python.

prompts -> one structured JSON call per seed question for paraphrases (step 1), [x:word]
templates of the step-1 sentences and their slot filling with context-aware synonyms (step 2,
`generation`), strict parsing (`responses`), the embedding filter with a cross-question guard,
the two-way meaning check (`equivalence`: NLI and/or LLM judge) and diverse selection
(`semantic_filter`, `embedder`), lineage rows (`lineage`) and the quality analyses: perplexity,
diversity gain, LLM-as-judge (`quality`).
"""
