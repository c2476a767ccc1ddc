"""Turning stored judgements into LoRA adapters with TRL."""
