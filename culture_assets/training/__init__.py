"""Training stage: culture training sets, local LoRA fine-tuning, OpenAI fine-tuning jobs."""
