"""What a stage microphone hears when no music plays: the presence model's negatives.

Each generator returns float32 mono audio at the rate asked for, deterministic for its seed, and
is built from material that can be had on this machine: noise and tones synthesised here, speech
from Debian's synthesizers (espeak-ng, flite, festival), instruments from FluidSynth and a GM
SoundFont. ``bank`` draws a labelled set of 30-s items: each ``Negative`` has its kind and a
GROUP (the voice or the seed that made it) so cross-validation can hold out whole generators:
a test fold's voices are never heard in training.

Kinds: ``silence`` (digital zero, dither), ``room_tone`` (pink/brown/white floors, HVAC rumble,
preamp hiss), ``hum`` (mains 50/60 Hz with harmonics), ``applause`` (Poisson claps), ``crowd``
(babble of many voices, cheering), ``speech`` (announcements in a room over room tone),
``tuning`` (a note repeated with pauses, a slow tuning sweep, strings one by one) and
``line_check`` (single drum hits, a bass note repeated irregularly, pink-noise bursts, a 1 kHz
tone, "check one two").

The real voice in ``/usr/share/sounds/alsa`` (alsa-utils) is NOT used here: it is the held-out
real-speech test.
"""

from __future__ import annotations

import logging
import shutil
import struct
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

log = logging.getLogger(__name__)

KINDS = ("silence", "room_tone", "hum", "applause", "crowd", "speech", "tuning", "line_check")

TEXTS = (
    "Ladies and gentlemen, please welcome to the stage",
    "Thank you, good night!",
    "Thank you so much, you have been amazing tonight",
    "One two, one two, check",
    "Check, check, check one two",
    "Can I get a little more vocals in the monitor please",
    "Is this thing on?",
    "The show will begin in five minutes, please take your seats",
    "Please switch off your mobile phones",
    "How are you doing tonight?",
    "This next one is a song we wrote last summer",
    "Give it up for the band!",
    "We will be back after a short break",
    "Please do not use flash photography during the performance",
    "Our drummer, everybody!",
    "Thanks for coming out, drive home safe",
    "Testing, testing, one two three",
    "Can you hear me at the back?",
    "We have a special guest for you tonight",
    "The bar will close in fifteen minutes",
    "Let me introduce the band",
    "Sorry, we have a little technical problem, one moment please",
    "Merchandise is available at the back of the hall",
    "Happy birthday to our bass player",
    "Everybody make some noise",
    "The emergency exits are located on both sides of the hall",
    "Sibilance, sibilance, check, two",
    "Hey hey, ho ho, can I have some more guitar in my wedge",
    "Good evening and welcome to the festival",
    "Right, we are going to slow things down a little",
)
CHEERS = ("yeah", "woo", "whoo hoo", "encore", "more, more", "hey", "wooo", "yeah!", "bravo")

ESPEAK_VOICES = ("en", "en-us", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-gb-x-gbclan", "en-gb-x-gbcwmd",
                 "de", "fr", "es", "it", "nl")
ESPEAK_VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5", "croak",
                   "klatt", "klatt3", "whisper", "Alex", "Annie", "david", "linda", "robert", "steph")
FLITE_VOICES = ("kal", "kal16", "awb", "rms", "slt")
FESTIVAL_VOICES = ("kal_diphone", "ked_diphone", "cmu_us_slt_arctic_hts", "pc_diphone", "lp_diphone")


class ToolMissing(RuntimeError):
    """A synthesizer or FluidSynth is not installed; the message names the Debian package."""


@dataclass(frozen=True)
class Negative:
    """One generated item: ``kind`` (see KINDS), ``group`` (held-out unit: voice or seed),
    ``name`` (unique), ``audio`` float32 mono at ``sr``."""

    kind: str
    group: str
    name: str
    audio: np.ndarray
    sr: int


# ---------------------------------------------------------------- small signal helpers (numpy)

def _rng(seed: int | Sequence[int]) -> np.random.Generator:
    return np.random.default_rng(seed)


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)) + 1e-20))


def at_db(x: np.ndarray, db: float) -> np.ndarray:
    """``x`` scaled to an RMS of ``db`` dBFS (silence stays silence)."""
    r = _rms(x)
    return (x * (10 ** (db / 20) / r)).astype(np.float32) if r > 1e-12 else x.astype(np.float32)


def colored(n: int, exponent: float, rng: np.random.Generator) -> np.ndarray:
    """Unit-RMS noise with power ~ 1/f**exponent (0 white, 1 pink, 2 brown)."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.maximum(np.arange(len(spec)), 1.0)
    y = np.fft.irfft(spec / f ** (exponent / 2), n=n)
    return (y / _rms(y)).astype(np.float32)


def shape_spectrum(x: np.ndarray, sr: int, lo: float | None = None, hi: float | None = None,
                   order: float = 2.0) -> np.ndarray:
    """Smooth high-pass at ``lo`` and low-pass at ``hi`` (Butterworth-like magnitudes, FFT)."""
    spec = np.fft.rfft(x)
    f = np.fft.rfftfreq(len(x), 1 / sr)
    h = np.ones_like(f)
    if lo:
        h *= (f / lo) ** order / np.sqrt(1 + (f / lo) ** (2 * order))
    if hi:
        h /= np.sqrt(1 + (f / hi) ** (2 * order))
    return np.fft.irfft(spec * h, n=len(x)).astype(np.float32)


def room(x: np.ndarray, sr: int, seed: int, rt60: tuple[float, float] = (0.3, 1.5)) -> np.ndarray:
    """``x`` in a room: convolved with a synthetic impulse response (``augment.synthetic_rir``,
    RT60 drawn in ``rt60``), same length and RMS."""
    import torch

    from .augment import reverb

    g = torch.Generator().manual_seed(int(seed) % (2**63))
    with torch.no_grad():
        y = reverb(torch.from_numpy(np.ascontiguousarray(x, np.float32))[None], sr, g, rt60)[0]
    return torch.nan_to_num(y).numpy().astype(np.float32)


def pa_chain(x: np.ndarray, sr: int, seed: int) -> np.ndarray:
    """Through a microphone and a PA: a random smooth EQ and band limit (``augment``'s)."""
    import torch

    from .augment import band_limit, random_eq

    g = torch.Generator().manual_seed(int(seed) % (2**63))
    with torch.no_grad():
        t = torch.from_numpy(np.ascontiguousarray(x, np.float32))[None]
        t = band_limit(random_eq(t, sr, 6.0, g), sr, g)
    return torch.nan_to_num(t[0]).numpy().astype(np.float32)


def place(dst: np.ndarray, src: np.ndarray, at: int, gain: float = 1.0) -> None:
    """Add ``src * gain`` into ``dst`` starting at sample ``at`` (clipped to ``dst``)."""
    if at >= len(dst) or at + len(src) <= 0:
        return
    a, b = max(0, at), min(len(dst), at + len(src))
    dst[a:b] += gain * src[a - at : b - at]


def _resample(x: np.ndarray, sr_in: int, sr: int) -> np.ndarray:
    x = np.asarray(x, np.float32)
    return x if sr_in == sr else soxr.resample(x, sr_in, sr, quality="HQ").astype(np.float32)


# ---------------------------------------------------------------- floors and tones

def silence(seconds: float, sr: int, seed: int) -> np.ndarray:
    """Digital silence (seed % 3 == 0) or near-silence: 16-bit TPDF dither, or a converter's
    noise floor at -100..-75 dBFS."""
    n, rng = int(seconds * sr), _rng(seed)
    if seed % 3 == 0:
        return np.zeros(n, np.float32)
    if seed % 3 == 1:
        lsb = 1 / 32768
        return ((rng.random(n) - rng.random(n)) * lsb).astype(np.float32)
    return at_db(colored(n, rng.uniform(0, 1), rng), rng.uniform(-100, -75))


def mains_hum(seconds: float, sr: int, seed: int) -> np.ndarray:
    """Mains hum at 50 or 60 Hz with random odd/even harmonics (ground loop, dimmer buzz), a
    slow wobble and a little hiss, at -70..-30 dBFS."""
    n, rng = int(seconds * sr), _rng(seed)
    f0 = 50.0 if seed % 2 == 0 else 60.0
    f0 *= 1 + rng.uniform(-0.002, 0.002)
    t = np.arange(n) / sr
    x = np.zeros(n)
    buzz = rng.uniform(0, 1)  # 0: smooth hum, 1: buzzy (many harmonics)
    for k in range(1, int(sr / 2 / f0)):
        a = k ** -(1.0 + 2.5 * (1 - buzz)) * rng.uniform(0.3, 1.0) * (1.5 if k % 2 else 1.0)
        if a < 1e-3:
            continue
        x += a * np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 2 * np.pi))
    x *= 1 + 0.1 * np.sin(2 * np.pi * rng.uniform(0.05, 0.5) * t)
    x = at_db(x.astype(np.float32), 0.0)
    x += at_db(colored(n, 0.0, rng), rng.uniform(-40, -15))
    return at_db(x, rng.uniform(-70, -30))


def room_tone(seconds: float, sr: int, seed: int) -> np.ndarray:
    """A venue's noise floor: pink, brown or white noise, HVAC rumble (low-passed brown noise that
    breathes slowly), preamp hiss (high-passed white), sometimes a little hum, at -75..-30 dBFS."""
    n, rng = int(seconds * sr), _rng(seed)
    t = np.arange(n) / sr
    x = at_db(colored(n, rng.choice([0.0, 1.0, 1.0, 1.5, 2.0]), rng), 0.0)
    if rng.random() < 0.6:  # HVAC
        rumble = shape_spectrum(colored(n, 2.0, rng), sr, lo=20, hi=rng.uniform(80, 400))
        rumble *= 1 + 0.3 * np.sin(2 * np.pi * rng.uniform(0.02, 0.3) * t + rng.uniform(0, 6))
        x += at_db(rumble, rng.uniform(-6, 6))
    if rng.random() < 0.5:  # preamp hiss
        x += at_db(shape_spectrum(colored(n, 0.0, rng), sr, lo=rng.uniform(2000, 5000)), rng.uniform(-20, 0))
    if rng.random() < 0.3:
        x += at_db(mains_hum(seconds, sr, seed + 7), rng.uniform(-25, -5))
    x = shape_spectrum(x, sr, lo=15)
    return at_db(x, rng.uniform(-75, -30))


# ---------------------------------------------------------------- crowd

def _clap_templates(sr: int, rng: np.random.Generator, count: int = 24) -> list[np.ndarray]:
    """Hand claps: 4..16 ms noise bursts, band-passed around 0.7..3 kHz, fast decay."""
    out = []
    for _ in range(count):
        n = int(sr * rng.uniform(0.004, 0.016)) + int(0.03 * sr)
        burst = rng.standard_normal(n)
        c = rng.uniform(700, 3000)
        burst = shape_spectrum(burst.astype(np.float32), sr, lo=c / rng.uniform(1.5, 3),
                               hi=c * rng.uniform(1.3, 2.5))
        env = np.exp(-np.arange(n) / (sr * rng.uniform(0.003, 0.012)))
        out.append((burst * env / (_rms(burst) + 1e-9)).astype(np.float32))
    return out


def applause(seconds: float, sr: int, seed: int, density: float | None = None) -> np.ndarray:
    """Applause: claps at Poisson times, ``density`` claps per second (default drawn from 3..400:
    one person to a hall), a swell, a plateau and a fade, in a room, over room tone."""
    n, rng = int(seconds * sr), _rng(seed)
    rate = float(density) if density is not None else float(np.exp(rng.uniform(np.log(3), np.log(400))))
    t = np.arange(n) / sr
    a, r = rng.uniform(0.2, 3.0), rng.uniform(0.5, 5.0)
    start, stop = rng.uniform(0, seconds * 0.2), rng.uniform(seconds * 0.6, seconds)
    env = np.clip((t - start) / a, 0, 1) * np.clip(1 - (t - stop) / r, 0, 1)
    env = env * (1 + 0.25 * np.sin(2 * np.pi * rng.uniform(0.05, 0.3) * t))
    temps = _clap_templates(sr, rng)
    x = np.zeros(n + int(0.1 * sr), np.float32)
    times = np.cumsum(rng.exponential(1 / rate, int(rate * seconds * 1.3) + 10))
    times = times[times < seconds]
    gains = rng.lognormal(0, 0.6, len(times)) * env[(times * sr).astype(int)]
    for tm, gn in zip(times, gains, strict=True):
        if gn > 1e-4:
            place(x, temps[rng.integers(len(temps))], int(tm * sr), float(gn))
    x = x[:n]
    if rng.random() < 0.8:
        x = room(x, sr, seed + 1, (0.4, 2.0))
    x = at_db(x, 0.0) + at_db(room_tone(seconds, sr, seed + 2), rng.uniform(-45, -20))
    return at_db(x, rng.uniform(-40, -10))


# ---------------------------------------------------------------- speech synthesis

def _run(cmd: list[str], what: str, **kw) -> None:
    try:
        subprocess.run(cmd, check=True, capture_output=True, timeout=120, **kw)
    except FileNotFoundError:
        raise ToolMissing(f"{cmd[0]} is not installed (Debian: {what})") from None
    except subprocess.CalledProcessError as e:
        err = (e.stderr or b"").decode(errors="replace").strip().splitlines()
        raise RuntimeError(f"{cmd[0]} failed: {err[-1] if err else e}") from None


def synthesize_many(texts: Sequence[str], sr: int, engine: str, voice: str, rate: float = 1.0,
                    pitch: float = 50.0) -> list[np.ndarray]:
    """Utterances, dry, float32 mono at ``sr``: ``engine`` espeak-ng (``voice`` like ``en-us+f3``;
    ``pitch`` 0..99), flite (kal, kal16, awb, rms, slt) or festival (a voice name such as
    kal_diphone; all texts in one run: festival takes ~1 s to start). ``rate`` > 1 speaks faster."""
    if engine not in ("espeak-ng", "flite", "festival"):
        raise ValueError(f"unknown speech engine {engine!r}: use espeak-ng, flite or festival")
    with tempfile.TemporaryDirectory(prefix="mer-tts-") as d:
        wavs = [Path(d) / f"u{i}.wav" for i in range(len(texts))]
        if engine == "festival":
            if shutil.which("festival") is None:
                raise ToolMissing("festival is not installed (Debian: festival festvox-kallpc16k)")
            lines = [f"(voice_{voice})", f"(Parameter.set 'Duration_Stretch {1 / rate:.3f})"]
            for t, w in zip(texts, wavs, strict=True):
                # (festival's Italian voices fail on a question mark)
                safe = t.replace('"', "").replace("\\", "").replace("?", ".")
                lines.append(f'(utt.save.wave (SynthText "{safe}") "{w}" \'riff)')
            scm = Path(d) / "u.scm"
            scm.write_text("\n".join(lines) + "\n", encoding="utf-8")
            _run(["festival", "-b", str(scm)], "festival + festvox voices")
        for t, w in zip(texts, wavs, strict=True):
            if engine == "espeak-ng":
                _run(["espeak-ng", "-v", voice, "-s", str(int(165 * rate)), "-p", str(int(pitch)), "-w",
                      str(w), t], "espeak-ng")
            elif engine == "flite":
                _run(["flite", "-voice", voice, "--setf", f"duration_stretch={1 / rate:.3f}", "-t", t,
                      "-o", str(w)], "flite")
        out = []
        for w in wavs:
            if not w.is_file() or w.stat().st_size < 100:
                raise RuntimeError(f"{engine} voice {voice} produced no audio")
            x, fsr = sf.read(str(w), dtype="float32", always_2d=True)
            x = x.mean(axis=1)
            if len(x) == 0 or _rms(x) < 1e-6:
                raise RuntimeError(f"{engine} voice {voice} produced silence")
            out.append(_resample(x, int(fsr), sr))
    return out


def synthesize(text: str, sr: int, engine: str, voice: str, rate: float = 1.0, pitch: float = 50.0
               ) -> np.ndarray:
    """One utterance (``synthesize_many``)."""
    return synthesize_many([text], sr, engine, voice, rate, pitch)[0]


def voices() -> list[tuple[str, str]]:
    """Every (engine, voice) of the installed synthesizers that this module can use."""
    out: list[tuple[str, str]] = []
    if shutil.which("espeak-ng"):
        out += [("espeak-ng", f"{v}+{var}") for v in ESPEAK_VOICES for var in ESPEAK_VARIANTS]
    if shutil.which("flite"):
        out += [("flite", v) for v in FLITE_VOICES]
    if shutil.which("festival"):
        have = set()
        for root in (Path("/usr/share/festival/voices"), Path("/usr/lib/festival/voices")):
            if root.is_dir():
                have |= {p.name for p in root.glob("*/*") if p.is_dir()}
        out += [("festival", v) for v in FESTIVAL_VOICES if v in have]
    return out


def talk(seconds: float, sr: int, engine: str, voice: str, seed: int, texts: Sequence[str] = TEXTS
         ) -> np.ndarray:
    """Someone talking at the microphone: utterances of one voice at a drawn rate and pitch with
    0.3..2.5 s pauses, through a mic/PA (EQ, band limit), in a room, over room tone."""
    n, rng = int(seconds * sr), _rng(seed)
    rate, pitch = rng.uniform(0.8, 1.25), rng.uniform(25, 75)
    x = np.zeros(n, np.float32)
    pos = int(rng.uniform(0, 1.5) * sr)
    # a phrase is ~1-4 s: seconds / 1 phrases always fill the item
    said = synthesize_many([str(t) for t in rng.choice(texts, size=max(1, int(seconds)))], sr, engine,
                           voice, rate, pitch)
    for u in said:
        if pos >= n:
            break
        place(x, at_db(u, rng.uniform(-3, 3)), pos)
        pos += len(u) + int(rng.uniform(0.3, 2.5) * sr)
    if rng.random() < 0.7:
        x = pa_chain(x, sr, seed + 1)
    if rng.random() < 0.7:
        x = room(x, sr, seed + 2, (0.2, 1.5))
    x = at_db(x, 0.0) + at_db(room_tone(seconds, sr, seed + 3), -rng.uniform(15, 45))
    return at_db(x, rng.uniform(-40, -12))


class UtterancePool:
    """Many short utterances from many espeak-ng/flite voices, synthesised once and reused by
    ``crowd`` (a babble of 30 voices would otherwise call a synthesizer hundreds of times)."""

    def __init__(self, sr: int, seed: int, size: int = 160,
                 voice_list: Sequence[tuple[str, str]] | None = None) -> None:
        rng = _rng(seed)
        vs = [v for v in (voice_list or voices()) if v[0] in ("espeak-ng", "flite")]
        if not vs:
            raise ToolMissing("espeak-ng is not installed (Debian: espeak-ng)")
        self.speech: list[np.ndarray] = []
        self.cheers: list[np.ndarray] = []
        for i in range(size):
            eng, v = vs[rng.integers(len(vs))]
            cheer = i % 4 == 0
            text = str(rng.choice(CHEERS if cheer else TEXTS))
            u = synthesize(text, sr, eng, v, rng.uniform(0.8, 1.4), rng.uniform(60, 99) if cheer else
                           rng.uniform(20, 80))
            (self.cheers if cheer else self.speech).append(u)


def crowd(seconds: float, sr: int, seed: int, pool: UtterancePool, talkers: int | None = None) -> np.ndarray:
    """A crowd between songs: ``talkers`` (default 4..40) overlapping voices at random distances
    (a murmur), sometimes cheering bursts, in a large room, over room tone."""
    n, rng = int(seconds * sr), _rng(seed)
    k = int(talkers) if talkers is not None else int(rng.integers(4, 41))
    x = np.zeros(n, np.float32)
    for _ in range(k):
        g = 10 ** (rng.uniform(-20, 0) / 20)
        pos = int(rng.uniform(-2, 2) * sr)
        while pos < n:
            u = pool.speech[rng.integers(len(pool.speech))]
            place(x, u / (_rms(u) + 1e-9), pos, g)
            pos += len(u) + int(rng.uniform(0.1, 2.0) * sr)
    if rng.random() < 0.5:  # cheering
        for _ in range(int(rng.integers(3, 30))):
            u = pool.cheers[rng.integers(len(pool.cheers))]
            place(x, u / (_rms(u) + 1e-9), int(rng.uniform(0, seconds) * sr), 10 ** (rng.uniform(-6, 6) / 20))
    x = shape_spectrum(x, sr, lo=80, hi=rng.uniform(3000, 7000))
    x = room(x, sr, seed + 1, (0.6, 2.0))
    x = at_db(x, 0.0) + at_db(room_tone(seconds, sr, seed + 2), -rng.uniform(15, 40))
    return at_db(x, rng.uniform(-40, -12))


# ---------------------------------------------------------------- instruments (FluidSynth)

def _vlq(v: int) -> bytes:
    out = [v & 0x7F]
    v >>= 7
    while v:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    return bytes(reversed(out))


def write_midi(path: Path, events: Sequence[tuple[float, bytes]]) -> Path:
    """A format-0 Standard MIDI File of ``(seconds, message bytes)`` events (120 bpm, 480 ticks per
    beat: 960 ticks a second). Small enough to need no MIDI library."""
    ticks = 960.0
    track = bytearray()
    last = 0
    for t, msg in sorted(events, key=lambda e: e[0]):
        tick = int(round(max(0.0, t) * ticks))
        track += _vlq(tick - last) + bytes(msg)
        last = tick
    track += _vlq(int(ticks)) + b"\xff\x2f\x00"
    tempo = b"\x00\xff\x51\x03\x07\xa1\x20"  # 500000 us per beat
    body = tempo + bytes(track)
    data = b"MThd" + struct.pack(">IHHH", 6, 0, 1, 480) + b"MTrk" + struct.pack(">I", len(body)) + body
    Path(path).write_bytes(data)
    return Path(path)


def gm_soundfont() -> Path:
    """A General MIDI SoundFont: Debian's (timgm6mb-soundfont comes with libfluidsynth3,
    fluid-soundfont-gm if installed), else the project's ../shared/data/soundfonts."""
    for p in (Path("/usr/share/sounds/sf2/FluidR3_GM.sf2"), Path("/usr/share/sounds/sf2/default-GM.sf2"),
              Path("/usr/share/sounds/sf2/TimGM6mb.sf2")):
        if p.is_file():
            return p
    from .data import shared_data_dir

    for p in sorted((shared_data_dir() / "soundfonts").glob("*.sf2")):
        return p
    raise ToolMissing("no GM SoundFont (Debian: timgm6mb-soundfont or fluid-soundfont-gm)")


def render(events: Sequence[tuple[float, bytes]], seconds: float, sr: int,
           sf2: Path | None = None) -> np.ndarray:
    """MIDI ``events`` rendered by FluidSynth (``midi.render_midi``) to ``seconds`` of mono at ``sr``."""
    from .midi import render_midi

    if shutil.which("fluidsynth") is None:
        raise ToolMissing("fluidsynth is not installed (Debian: fluidsynth)")
    sf2 = sf2 or gm_soundfont()
    with tempfile.TemporaryDirectory(prefix="mer-midi-") as d:
        mid = write_midi(Path(d) / "x.mid", list(events) + [(seconds, b"\xb0\x7b\x00")])
        wav = render_midi(mid, sf2, Path(d) / "x.wav", sr=22050)
        x, fsr = sf.read(str(wav), dtype="float32")
    x = _resample(x, int(fsr), sr)
    n = int(seconds * sr)
    return np.pad(x, (0, max(0, n - len(x))))[:n].astype(np.float32)


def _note(t: float, dur: float, key: int, vel: int, ch: int = 0) -> list[tuple[float, bytes]]:
    return [(t, bytes([0x90 | ch, key, vel])), (t + dur, bytes([0x80 | ch, key, 0]))]


def _bend(t: float, cents: float, ch: int = 0, range_cents: float = 200.0) -> tuple[float, bytes]:
    v = int(np.clip(8192 + cents / range_cents * 8192, 0, 16383))
    return (t, bytes([0xE0 | ch, v & 0x7F, v >> 7]))


#: GM programs a stage tunes or line-checks: guitars, basses, strings, brass, reeds, keys, leads
TUNING_PROGRAMS = (24, 25, 26, 27, 29, 32, 33, 34, 35, 40, 41, 42, 43, 56, 57, 61, 65, 66, 71, 73, 0, 4, 16,
                   80, 81)


def tuning(seconds: float, sr: int, seed: int, sf2: Path | None = None) -> np.ndarray:
    """An instrument being tuned (seed % 3): 0 one note repeated with pauses, drifting into tune;
    1 a slow tuning sweep (a held note bent towards pitch, again and again); 2 the strings one by
    one (each plucked 2..5 times, pauses between). Over room tone, in a room."""
    rng = _rng(seed)
    prog = int(rng.choice(TUNING_PROGRAMS))
    ev: list[tuple[float, bytes]] = [(0.0, bytes([0xC0, prog])), _bend(0.0, 0.0)]
    mode = seed % 3
    t = rng.uniform(0, 1.5)
    if mode == 2:
        strings = [40, 45, 50, 55, 59, 64] if prog < 32 or prog > 39 else [28, 33, 38, 43]
        strings = [s + 12 * int(rng.integers(-1, 2)) if prog >= 40 else s for s in strings]
        i = 0
        while t < seconds:
            key = strings[i % len(strings)]
            for _ in range(int(rng.integers(2, 6))):
                ev.append(_bend(t, rng.uniform(-40, 40)))
                dur = rng.uniform(0.5, 2.5)
                ev += _note(t, dur, key, int(rng.integers(50, 115)))
                t += dur + rng.uniform(0.3, 2.0)
            i += 1
    else:
        key = int(rng.integers(36, 76))
        off = rng.uniform(-60, 60)
        while t < seconds:
            dur = rng.uniform(0.6, 3.0) if mode == 0 else rng.uniform(2.0, 5.0)
            ev += _note(t, dur, key, int(rng.integers(50, 115)))
            if mode == 0:
                ev.append(_bend(t, off))
            else:  # sweep towards pitch over the held note
                for j in range(12):
                    ev.append(_bend(t + dur * j / 12, off * (1 - j / 12) + rng.uniform(-3, 3)))
            off *= rng.uniform(0.3, 0.9) if abs(off) > 3 else rng.uniform(-8, 8)
            t += dur + rng.uniform(0.4, 3.0)
    x = at_db(render(ev, seconds, sr, sf2), 0.0)
    if rng.random() < 0.6:
        x = room(x, sr, seed + 1, (0.3, 1.2))
    x = at_db(x, 0.0) + at_db(room_tone(seconds, sr, seed + 2), -rng.uniform(20, 45))
    return at_db(x, rng.uniform(-40, -12))


def line_check(seconds: float, sr: int, seed: int, sf2: Path | None = None,
               voice: tuple[str, str] | None = None) -> np.ndarray:
    """A line check: segments of single drum hits (one drum at a time, irregular spacing), a bass
    note repeated irregularly, pink-noise bursts, a 1 kHz (or 440 Hz / 100 Hz) test tone and,
    with a ``voice``, "check one two"; over room tone, in a room."""
    n, rng = int(seconds * sr), _rng(seed)
    x = np.zeros(n, np.float32)
    t = 0.0
    drums = (36, 38, 40, 41, 43, 45, 47, 48, 50, 42, 46, 49, 51)
    kinds = ["drums", "bass", "pink", "tone"] + (["voice"] if voice else [])
    while t < seconds:
        kind = str(rng.choice(kinds))
        seg = float(min(seconds - t, rng.uniform(4, 12)))
        a, m = int(t * sr), int(seg * sr)
        if kind == "drums":
            key, ev, tt = int(rng.choice(drums)), [], rng.uniform(0, 0.5)
            while tt < seg:
                ev += _note(tt, 0.3, key, int(rng.integers(60, 127)), ch=9)
                tt += rng.uniform(0.35, 2.2)
            y = render(ev, seg, sr, sf2)
        elif kind == "bass":
            key = int(rng.integers(28, 48))
            ev, tt = [(0.0, bytes([0xC0, int(rng.choice([32, 33, 34, 35, 38]))]))], rng.uniform(0, 0.5)
            while tt < seg:
                d = rng.uniform(0.2, 1.5)
                ev += _note(tt, d, key, int(rng.integers(60, 120)))
                tt += d + rng.uniform(0.4, 2.5)
            y = render(ev, seg, sr, sf2)
        elif kind == "pink":
            y = np.zeros(m, np.float32)
            tt = 0.0
            while tt < seg:
                d = rng.uniform(0.5, 3.0)
                b = colored(int(d * sr), 1.0, rng)[: max(0, m - int(tt * sr))]
                place(y, b, int(tt * sr))
                tt += d + rng.uniform(0.5, 2.0)
        elif kind == "tone":
            f = float(rng.choice([1000.0, 1000.0, 440.0, 100.0]))
            tt = np.arange(m) / sr
            y = np.sin(2 * np.pi * f * tt).astype(np.float32)
            if rng.random() < 0.5:  # tone bursts
                y *= (np.sin(2 * np.pi * rng.uniform(0.1, 0.5) * tt) > 0).astype(np.float32)
        else:
            assert voice is not None
            y = np.zeros(m, np.float32)
            tt = 0.0
            while tt < seg:
                u = synthesize(str(rng.choice(["check", "check one two", "one two", "check check",
                                               "one two one two", "sibilance"])), sr, voice[0], voice[1])
                place(y, u, int(tt * sr))
                tt += len(u) / sr + rng.uniform(0.3, 1.5)
        place(x, at_db(y[:m], rng.uniform(-6, 3)), a)
        t += seg + rng.uniform(0.2, 2.0)
    if rng.random() < 0.6:
        x = room(x, sr, seed + 1, (0.3, 1.5))
    x = at_db(x, 0.0) + at_db(room_tone(seconds, sr, seed + 2), -rng.uniform(20, 45))
    return at_db(x, rng.uniform(-40, -10))


# ---------------------------------------------------------------- the labelled set

#: items per kind in the default bank (speech is the hardest and most varied negative)
DEFAULT_COUNTS = {"silence": 15, "room_tone": 36, "hum": 18, "applause": 40, "crowd": 40, "speech": 130,
                  "tuning": 45, "line_check": 36}


def bank(sr: int = 16000, seconds: float = 30.0, seed: int = 0, counts: dict[str, int] | None = None,
         progress: bool = True) -> list[Negative]:
    """The negatives: ``counts[kind]`` items of ``seconds`` each, deterministic for ``seed``.

    Groups: speech and line checks by voice (``speech:flite:slt``), so folds hold out voices;
    everything else by its own seed. Speech takes turns: espeak-ng, flite, espeak-ng, festival,
    each cycling through its installed voices; a kind whose tool is missing is skipped with a
    warning."""
    from tqdm.auto import tqdm

    counts = dict(DEFAULT_COUNTS if counts is None else counts)
    bad = sorted(set(counts) - set(KINDS))
    if bad:
        raise ValueError(f"unknown negative kind(s): {', '.join(bad)}")
    vs = voices()
    rng = _rng([seed, 1])
    speech_voices = [vs[i] for i in rng.permutation(len(vs))] if vs else []
    # half the speech from espeak-ng's many voices, a quarter each from flite's and festival's few
    by_engine = {e: [v for v in speech_voices if v[0] == e] for e in ("espeak-ng", "flite", "festival")}
    turns = [e for e in ("espeak-ng", "flite", "espeak-ng", "festival") if by_engine[e]]
    pool: UtterancePool | None = None
    out: list[Negative] = []
    total = sum(counts.values())
    bar = tqdm(total=total, desc="negatives", unit="item", disable=not progress, leave=False)
    for kind in KINDS:
        for i in range(counts.get(kind, 0)):
            s = int(seed) * 100_000 + KINDS.index(kind) * 1000 + i
            group = f"{kind}:{s}"
            try:
                if kind == "silence":
                    x = silence(seconds, sr, s)
                elif kind == "room_tone":
                    x = room_tone(seconds, sr, s)
                elif kind == "hum":
                    x = mains_hum(seconds, sr, s)
                elif kind == "applause":
                    x = applause(seconds, sr, s)
                elif kind == "crowd":
                    if pool is None:
                        pool = UtterancePool(sr, seed)
                    x = crowd(seconds, sr, s, pool)
                elif kind == "speech":
                    if not speech_voices:
                        raise ToolMissing("no speech synthesizer (Debian: espeak-ng flite festival)")
                    eng = turns[i % len(turns)]
                    eng, v = by_engine[eng][(i // len(turns)) % len(by_engine[eng])]
                    group = f"speech:{eng}:{v}"
                    x = talk(seconds, sr, eng, v, s)
                elif kind == "tuning":
                    x = tuning(seconds, sr, s)
                else:
                    v = speech_voices[(i * 7) % len(speech_voices)] if speech_voices and i % 3 == 0 else None
                    group = f"line_check:{v[0]}:{v[1]}" if v else group
                    x = line_check(seconds, sr, s, voice=v)
            except ToolMissing as e:
                log.warning("negatives: %s skipped: %s", kind, e)
                bar.update(counts[kind] - i)
                break
            except RuntimeError as e:  # one voice or render failing must not stop the bank
                log.warning("negatives: %s item %d skipped: %s", kind, i, e)
                bar.update(1)
                continue
            out.append(Negative(kind=kind, group=group, name=f"{kind}-{s}", audio=x, sr=sr))
            bar.update(1)
    bar.close()
    return out
