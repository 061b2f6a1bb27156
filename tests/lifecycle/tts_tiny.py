"""A tiny randomly initialised VibeVoice-TTS (1.5B architecture, transformers' native classes) written to disk.

Qwen2 of 2 layers × 32, one block per acoustic/semantic stage with 4 filters, a 1-layer diffusion head, and a
byte-level tokenizer carrying the audio tokens. Its language-model head is zero, so among the tokens the
generator allows, the lowest id wins: `<|vision_pad|>` (the next speech latent) is given the lowest id, so a
line is speech until `max_new_tokens`; the diffusion head and the acoustic decoder run for real.
"""

from __future__ import annotations

from pathlib import Path

SPECIAL_TOKENS = ["<|vision_pad|>", "<|vision_start|>", "<|vision_end|>", "<|endoftext|>"]


def write_tiny_tts(directory: Path) -> Path:
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import (
        PreTrainedTokenizerFast,
        Qwen2Config,
        VibeVoiceAcousticTokenizerConfig,
        VibeVoiceAcousticTokenizerEncoderConfig,
        VibeVoiceAcousticTokenizerFeatureExtractor,
        VibeVoiceConfig,
        VibeVoiceDiffusionHeadConfig,
        VibeVoiceForConditionalGeneration,
        VibeVoiceProcessor,
    )

    backend = Tokenizer(models.BPE(vocab={c: i for i, c in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet()))},
                                   merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    backend.add_special_tokens(SPECIAL_TOKENS)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<|endoftext|>",
                                        pad_token="<|endoftext|>")
    processor = VibeVoiceProcessor(feature_extractor=VibeVoiceAcousticTokenizerFeatureExtractor(),
                                   tokenizer=tokenizer)
    stages = {"hidden_size": 8, "num_filters": 4, "depths": [1] * 7, "downsampling_ratios": [2, 2, 4, 5, 5, 8]}
    config = VibeVoiceConfig(
        text_config=Qwen2Config(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                                num_key_value_heads=2, vocab_size=len(tokenizer), tie_word_embeddings=False),
        audio_config=VibeVoiceAcousticTokenizerConfig(**stages),
        semantic_model_config=VibeVoiceAcousticTokenizerEncoderConfig(**{**stages, "hidden_size": 16}),
        diffusion_head_config=VibeVoiceDiffusionHeadConfig(intermediate_size=64, num_hidden_layers=1,
                                                           frequency_embedding_size=32),
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
        audio_bos_token_id=processor.audio_bos_token_id, audio_eos_token_id=processor.audio_eos_token_id,
        audio_token_id=processor.audio_token_id,
    )
    model = VibeVoiceForConditionalGeneration(config)
    torch.nn.init.zeros_(model.lm_head.weight)
    model.save_pretrained(directory)
    processor.save_pretrained(directory)
    return directory
