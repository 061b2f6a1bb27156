"""`callagent synth calls`: scripted two-speaker Korean call-centre dialogs rendered to call recordings.

The script comes from an industry pack: its greeting, then the caller asks about KB topics and the agent
answers with the topic's first sentence. Each line is rendered on its own (so its times are known), brought
to the level of a phone call, passed through the 8 kHz G.711 μ-law channel (agent.ops.bench.mulaw) and
placed on its side of a stereo WAV laid out as `uuid_record` writes it with RECORD_STEREO=true: caller LEFT,
agent RIGHT, 16-bit PCM at 8 kHz. Beside it `<name>.json`: the transcript with speaker, role and times.

Voices: VibeVoice-TTS 1.5B through transformers' native `VibeVoiceForConditionalGeneration` (transformers
>= 5.24; the real checkpoint is the user's), two speakers by their `Speaker N:` labels; or espeak-ng's Korean
voice at two pitches when no checkpoint is given (or transformers lacks the class).
"""

from __future__ import annotations

import json
import math
import random
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import yaml

from agent.ops.bench.mulaw import PHONE_RATE, telephone_band

GAP_S = 0.4
LEVEL = 0.3               # peak of each rendered line (about -10 dBFS): a phone call's speech level
FRAME_RATE = 7.5          # VibeVoice speech latents per second
SECONDS_PER_SYLLABLE = 0.22
PROMPT_HEAD = (" Transform the text provided by various speakers into speech output, utilizing the distinct voice"
               " of each respective speaker.\n Text input:\n")
CALLER, AGENT = 0, 1       # speaker ids; caller LEFT, agent RIGHT
Renderer = Callable[[str, int], tuple[np.ndarray, int]]  # (text, speaker) → (float mono, rate)


class SynthError(RuntimeError):
    pass


@dataclass(frozen=True)
class Line:
    speaker: int
    text: str


def _sections(kb_dir: Path) -> list[tuple[str, str]]:
    """(heading, first sentence) of each `## ` section of the pack's KB."""
    out = []
    for path in sorted(kb_dir.glob("*.md")):
        for block in re.split(r"^## ", path.read_text(encoding="utf-8"), flags=re.M)[1:]:
            heading, _, body = block.partition("\n")
            sentence = re.split(r"(?<=[.?!])\s", " ".join(body.split()), maxsplit=1)[0]
            if heading.strip() and sentence:
                out.append((heading.strip(), sentence))
    return out


def _object_particle(word: str) -> str:
    last = word[-1:]
    has_final = "가" <= last <= "힣" and (ord(last) - 0xAC00) % 28 != 0
    return "을" if has_final else "를"


def script(pack_name: str, seed: int, topics: int = 2) -> list[Line]:
    """A short call of the pack: greeting, `topics` questions with their answers, thanks and goodbye."""
    from agent.dialog.packs import load_pack

    pack = load_pack(pack_name)
    sections = _sections(pack.kb_dir)
    chosen = random.Random(f"{pack_name}:{seed}").sample(sections, min(topics, len(sections)))
    lines = [Line(AGENT, " ".join(pack.greeting.split()))]
    for i, (heading, answer) in enumerate(chosen):
        ask = f"{heading} 문의드리려고요." if i == 0 else f"그리고 {heading}도 궁금한데요."
        lines += [Line(CALLER, ask), Line(AGENT, answer)]
    lines += [Line(CALLER, "네, 알겠습니다. 감사합니다."),
              Line(AGENT, f"{pack.company}{_object_particle(pack.company)} 이용해 주셔서 감사합니다.")]
    return lines


def spoken(text: str) -> str:
    """What the voice reads: numbers spelled (VibeVoice has no text normalisation); the transcript keeps digits."""
    from agent.lifecycle.compare import spell_numbers

    return spell_numbers(text).replace("~", " 에서 ").replace("%", " 퍼센트")


class DdimVScheduler:
    """DDIM with v-prediction on the squaredcos_cap_v2 schedule: what VibeVoice's DPM-Solver config describes,
    for hosts without diffusers (`set_timesteps`, `timesteps`, `step(...).prev_sample`)."""

    def __init__(self, train_steps: int = 1000):
        import torch

        t = torch.arange(train_steps + 1, dtype=torch.float64) / train_steps
        ab = torch.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2
        betas = torch.clamp(1 - ab[1:] / ab[:-1], max=0.999)
        self.alphas_cumprod = torch.cumprod(1 - betas, 0)
        self.train_steps = train_steps
        self.timesteps = torch.tensor([train_steps - 1])

    def set_timesteps(self, num_inference_steps: int) -> None:
        import torch

        self.timesteps = torch.linspace(self.train_steps - 1, 0, num_inference_steps).round().long()

    def step(self, v: Any, timestep: Any, sample: Any) -> Any:
        from types import SimpleNamespace

        steps = self.timesteps.tolist()
        t = int(timestep)
        i = steps.index(t)
        ab = self.alphas_cumprod[t].to(sample)
        ab_prev = self.alphas_cumprod[steps[i + 1]].to(sample) if i + 1 < len(steps) else sample.new_tensor(1.0)
        x0 = ab.sqrt() * sample - (1 - ab).sqrt() * v
        eps = (1 - ab).sqrt() * sample + ab.sqrt() * v
        return SimpleNamespace(prev_sample=ab_prev.sqrt() * x0 + (1 - ab_prev).sqrt() * eps)


def vibevoice_renderer(model_dir: Path, *, device: str = "cpu", diffusion_steps: int = 10,
                       cfg_scale: float = 1.3, max_frames: int | None = None) -> Renderer:
    """Lines through VibeVoice-TTS (transformers-native). `max_frames` caps each line (tests); otherwise the
    cap is twice the line's expected length and the model ends the line itself."""
    try:
        import torch
        from transformers import VibeVoiceForConditionalGeneration, VibeVoiceProcessor
    except ImportError as exc:
        raise SynthError(f"VibeVoice-TTS needs torch and transformers>=5.24 (VibeVoiceForConditionalGeneration): "
                         f"{exc}") from exc
    if not (model_dir / "config.json").is_file():
        raise SynthError(f"no VibeVoice-TTS checkpoint at {model_dir} (config.json missing)")
    processor = VibeVoiceProcessor.from_pretrained(str(model_dir), local_files_only=True)
    dtype = torch.float32 if device == "cpu" else torch.bfloat16
    model = VibeVoiceForConditionalGeneration.from_pretrained(str(model_dir), dtype=dtype,
                                                              local_files_only=True).to(device).eval()
    try:
        import diffusers  # noqa: F401 - the checkpoint's own scheduler (generation config) when present

        scheduler: Any = None
    except ImportError:
        scheduler = DdimVScheduler()
    bos = processor.audio_bos_token

    def render(text: str, speaker: int) -> tuple[np.ndarray, int]:
        syllables = len(re.findall(r"[가-힣A-Za-z0-9]", text))
        frames = math.ceil(2 * FRAME_RATE * (0.5 + SECONDS_PER_SYLLABLE * syllables))
        if max_frames is not None:
            frames = min(frames, max_frames)
        prompt = f"{PROMPT_HEAD} Speaker {speaker}:{text}\n Speech output:\n{bos}"
        inputs = processor.tokenizer(prompt, return_tensors="pt").to(device)
        extra = {"noise_scheduler": scheduler} if scheduler is not None else {}
        with torch.no_grad():
            audio = model.generate(**inputs, max_new_tokens=frames, num_diffusion_steps=diffusion_steps,
                                   guidance_scale=cfg_scale, do_sample=False, **extra)
        if not audio or audio[0] is None:
            raise SynthError(f"VibeVoice produced no audio for {text!r}")
        return audio[0].float().reshape(-1).cpu().numpy(), 24000

    return render


def espeak_renderer() -> Renderer:
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise SynthError("neither a VibeVoice-TTS checkpoint (--model) nor espeak-ng is available")
    voices = {CALLER: ["-p", "62", "-s", "165"], AGENT: ["-p", "38", "-s", "150"]}  # two distinct speakers

    def render(text: str, speaker: int) -> tuple[np.ndarray, int]:
        with tempfile.TemporaryDirectory(prefix="callagent-synth-") as tmp:
            wav = Path(tmp) / "line.wav"
            subprocess.run([exe, "-v", "ko", *voices[speaker], "-w", str(wav), text], check=True,
                           capture_output=True, timeout=60)
            data, rate = sf.read(str(wav), dtype="float32", always_2d=True)
        return data.mean(axis=1), int(rate)

    return render


def _phone(audio: np.ndarray, rate: int) -> np.ndarray:
    """A rendered line at call level, through the 8 kHz μ-law channel: int16 at 8 kHz."""
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    scaled = audio * (LEVEL / peak) if peak > 0 else audio
    pcm = np.clip(np.round(scaled * 32767), -32768, 32767).astype(np.int16)
    return telephone_band(pcm, rate, PHONE_RATE)


def render_call(lines: Sequence[Line], render: Renderer) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """(stereo int16 at 8 kHz, transcript segments): one speaker at a time, GAP_S between lines."""
    parts: list[tuple[int, np.ndarray]] = [(line.speaker, _phone(*render(spoken(line.text), line.speaker)))
                                           for line in lines]
    gap = int(GAP_S * PHONE_RATE)
    total = gap + sum(len(p) + gap for _, p in parts)
    stereo = np.zeros((total, 2), np.int16)
    segments = []
    at = gap
    for line, (speaker, pcm) in zip(lines, parts, strict=True):
        stereo[at:at + len(pcm), 0 if speaker == CALLER else 1] = pcm
        segments.append({"speaker": speaker, "role": "caller" if speaker == CALLER else "agent", "text": line.text,
                         "start": round(at / PHONE_RATE, 2), "end": round((at + len(pcm)) / PHONE_RATE, 2)})
        at += len(pcm) + gap
    return stereo, segments


def caller_scenario(out: Path, stem: str, stereo: np.ndarray, segments: Sequence[dict[str, Any]], *,
                    pack: str) -> Path:
    """A simulator scenario in which the caller speaks the rendered caller lines as audio (no text injection, so
    the real recogniser hears them): one WAV per caller line, `say_audio` steps, each answered before the next.
    Runs with `callagent demo --scenario <stem>.scenario.yaml`."""
    steps: list[Any] = [{"wait_idle": {}}]
    for i, seg in enumerate(s for s in segments if s["role"] == "caller"):
        wav = f"{stem}-caller-{i:02d}.wav"
        a, b = round(seg["start"] * PHONE_RATE), round(seg["end"] * PHONE_RATE)
        sf.write(str(out / wav), stereo[a:b, 0], PHONE_RATE, subtype="PCM_16")
        steps += [{"say_audio": wav}, {"wait_playback": {"timeout_s": 20}}, {"wait_idle": {}}]
    steps.append("hangup")
    path = out / f"{stem}.scenario.yaml"
    scenario = {"name": f"synth-{stem}", "caller": "01012345678", "destination": "15881234",
                "variables": {"callagent_industry": pack}, "steps": steps}
    path.write_text(yaml.safe_dump(scenario, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def synth_calls(out: Path, *, packs: Sequence[str] = (), model: str | None = None, count: int = 1, seed: int = 0,
                backend: str = "auto", device: str = "cpu", topics: int = 2,
                max_frames: int | None = None) -> list[dict[str, Any]]:
    """Renders `count` dialogs per pack into `out`; returns what was written (paths, backend, duration)."""
    from agent.dialog.packs import PACKS_DIR

    names = list(packs) or sorted(p.name for p in PACKS_DIR.iterdir() if (p / "pack.yaml").is_file())
    if backend == "vibevoice" or (backend == "auto" and model):
        if not model:
            raise SynthError("--backend vibevoice needs --model (a VibeVoice-TTS 1.5B checkpoint directory)")
        render, used = vibevoice_renderer(Path(model), device=device, max_frames=max_frames), "vibevoice"
    else:
        render, used = espeak_renderer(), "espeak-ng"
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name in names:
        for k in range(count):
            lines = script(name, seed + k, topics)
            stereo, segments = render_call(lines, render)
            stem = f"{name}-{seed + k:03d}"
            sf.write(str(out / f"{stem}.wav"), stereo, PHONE_RATE, subtype="PCM_16")
            meta = {"audio_path": f"{stem}.wav", "audio_duration": round(len(stereo) / PHONE_RATE, 2),
                    "sample_rate": PHONE_RATE, "channels": ["caller", "agent"], "backend": used, "pack": name,
                    "segments": segments}
            (out / f"{stem}.json").write_text(json.dumps(meta, ensure_ascii=False, indent=1), encoding="utf-8")
            scenario = caller_scenario(out, stem, stereo, segments, pack=name)
            written.append({"wav": str(out / f"{stem}.wav"), "transcript": str(out / f"{stem}.json"),
                            "scenario": str(scenario), "backend": used, "duration_s": meta["audio_duration"],
                            "lines": len(segments)})
    return written
