"""A tiny randomly initialised VibeVoice-ASR checkpoint (transformers' native classes) written to disk.

Same architecture and file layout as microsoft/VibeVoice-ASR-HF, shrunk: Qwen2 text model of 2 layers × 32,
one block per encoder stage with 4 filters, a 263-token byte-level tokenizer carrying the Qwen special
tokens the processor uses, and a chat template with the training-time prompt wording. ~3 M parameters.
"""

from __future__ import annotations

from pathlib import Path

CHAT_TEMPLATE = """\
<|im_start|>system
You are a helpful assistant that transcribes audio input into text output in JSON format.<|im_end|>
{%- for message in messages if message['role'] == 'user' -%}
{%- set texts = message['content'] | selectattr('type', 'equalto', 'text') | list -%}
{%- set extra = texts[0]['text'] if texts else none -%}
{{ '\\n' }}<|im_start|>user{{ '\\n' }}
{%- for item in message['content'] if item['type'] == 'audio' -%}
<|object_ref_start|><|box_start|><|object_ref_end|>{{ '\\n' }}
{%- if extra -%}
This is a <|AUDIO_DURATION|> seconds audio, with extra info: {{ extra }}{{ '\\n\\n' }}\
Please transcribe it with these keys: Start time, End time, Speaker ID, Content
{%- else -%}
This is a <|AUDIO_DURATION|> seconds audio, please transcribe it with these keys: \
Start time, End time, Speaker ID, Content
{%- endif -%}
{%- endfor -%}
<|im_end|>{{ '\\n' }}
{%- endfor -%}
{%- if add_generation_prompt -%}<|im_start|>assistant{{ '\\n' }}{%- endif -%}
"""
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
                  "<|box_start|>", "<|AUDIO_DURATION|>"]


def write_tiny_checkpoint(directory: Path) -> Path:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import (
        PreTrainedTokenizerFast,
        Qwen2Config,
        VibeVoiceAcousticTokenizerEncoderConfig,
        VibeVoiceAcousticTokenizerFeatureExtractor,
        VibeVoiceAsrConfig,
        VibeVoiceAsrForConditionalGeneration,
        VibeVoiceAsrProcessor,
    )

    # Byte-level BPE without merges: every UTF-8 byte is a token, so Korean round-trips.
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    backend = Tokenizer(models.BPE(vocab={c: i for i, c in enumerate(alphabet)}, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    backend.add_special_tokens(SPECIAL_TOKENS)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<|endoftext|>",
                                        pad_token="<|endoftext|>")
    processor = VibeVoiceAsrProcessor(feature_extractor=VibeVoiceAcousticTokenizerFeatureExtractor(),
                                      tokenizer=tokenizer, chat_template=CHAT_TEMPLATE)
    # The real downsampling ratios keep the hop at 3200 samples (7.5 tokens/s), as the processor assumes.
    encoder = {"hidden_size": 8, "num_filters": 4, "depths": [1] * 7, "downsampling_ratios": [2, 2, 4, 5, 5, 8]}
    config = VibeVoiceAsrConfig(
        acoustic_tokenizer_encoder_config=VibeVoiceAcousticTokenizerEncoderConfig(**encoder),
        semantic_tokenizer_encoder_config=VibeVoiceAcousticTokenizerEncoderConfig(**{**encoder, "hidden_size": 16}),
        text_config=Qwen2Config(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                                num_key_value_heads=2, vocab_size=len(tokenizer)),
        audio_token_id=processor.audio_token_id,
        audio_bos_token_id=processor.audio_bos_token_id,
        audio_eos_token_id=processor.audio_eos_token_id,
    )
    VibeVoiceAsrForConditionalGeneration(config).save_pretrained(directory)
    processor.save_pretrained(directory)
    return directory
