"""The model lifecycle: recorded calls → reviewed dataset → LoRA-tuned VibeVoice-ASR → comparison → promotion;
and synthetic call audio where real calls are not yet available (docs/models.md, "Model lifecycle")."""
