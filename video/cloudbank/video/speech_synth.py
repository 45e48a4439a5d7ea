"""English speech made on this machine: festival's `cmu_us_slt_arctic_hts` voice (Debian
`festival festvox-us-slt-hts sox`), for the ASR bench and the tests that need real speech.

pocketsphinx hears festival's voice well and espeak-ng's hardly at all, so English test speech is
festival's. Silence is padded around each clip: a phrase that ends exactly at the end of the audio is
missed by pocketsphinx's phrase search (a live stream has the silence naturally).
"""

from __future__ import annotations

import shutil
import subprocess
import wave
from pathlib import Path

import numpy as np

from cloudbank.platform.errors import StartupError

VOICE = "(voice_cmu_us_slt_arctic_hts)"


def require_tools() -> None:
    """StartupError naming the package when festival or sox is missing."""
    for tool, package in (("text2wave", "festival festvox-us-slt-hts"), ("sox", "sox")):
        if shutil.which(tool) is None:
            raise StartupError(f"making English test speech needs {tool}: apt-get install {package}")


def festival_wav(text: str, out: Path, rate: int = 16000, pad: tuple[float, float] = (0.4, 0.6)) -> Path:
    """`text` spoken by festival into `out`: mono s16 WAV at `rate` with `pad` seconds of silence
    before and after. An existing `out` is kept (callers cache by name)."""
    if out.exists():
        return out
    require_tools()
    txt, raw = out.with_suffix(".txt"), out.with_suffix(".raw.wav")
    txt.write_text(text + "\n", encoding="utf-8")
    subprocess.run(["text2wave", "-eval", VOICE, str(txt), "-o", str(raw)], check=True, capture_output=True)
    subprocess.run(["sox", "-D", str(raw), "-r", str(rate), "-c", "1", "-b", "16", str(out),
                    "pad", str(pad[0]), str(pad[1])], check=True, capture_output=True)
    raw.unlink(missing_ok=True)
    txt.unlink(missing_ok=True)
    return out


def read_pcm(path: Path) -> tuple[np.ndarray, int]:
    """A mono s16 WAV's samples and rate."""
    with wave.open(str(path)) as w:
        if w.getnchannels() != 1 or w.getsampwidth() != 2:
            raise ValueError(f"{path}: expected mono 16-bit audio")
        return np.frombuffer(w.readframes(w.getnframes()), np.int16).copy(), w.getframerate()


def write_pcm(path: Path, pcm: np.ndarray, rate: int) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.astype(np.int16).tobytes())
    return path


def festival_pcm(text: str, folder: Path, name: str, rate: int = 16000) -> np.ndarray:
    """`text` spoken by festival as int16 samples at `rate` (the WAV cached in `folder` as `name`)."""
    pcm, got = read_pcm(festival_wav(text, folder / f"{name}.{rate}.wav", rate))
    if got != rate:  # pragma: no cover - sox was asked for it
        raise ValueError(f"festival gave {got} Hz, not {rate}")
    return pcm
