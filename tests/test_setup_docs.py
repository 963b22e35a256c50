"""What a newcomer reads must be what runs: README's set-up lines, CI, the exit codes, show.toml.

Each test reads the document itself (README.md, .ci/run, examples/show.toml) and checks it
against the real thing (the file CI installs from, the exit code a real run returns, the keys
``--print-config`` prints), so the two cannot drift apart unnoticed.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import tomllib

from tests.conftest import missing
from tests.test_cli import run_cli

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
APT_FILE = ROOT / ".ci" / "apt-packages.txt"
CI_RUN = ROOT / ".ci" / "run"


def bash(script: str) -> str:
    """stdout of a bash snippet run in the repository root (the way .ci/run and a user run it)."""
    r = subprocess.run(["bash", "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return r.stdout


# -- system packages: one list ------------------------------------------------------------------


def readme_apt_line() -> str:
    lines = [ln for ln in README.splitlines() if "apt-get install" in ln and "apt-packages.txt" in ln]
    assert len(lines) == 1, f"README must have ONE apt line that reads .ci/apt-packages.txt: {lines}"
    return lines[0].strip()


def test_readme_apt_line_and_ci_read_the_same_list() -> None:
    line = readme_apt_line()
    assert line.startswith("sudo apt-get update && sudo apt-get install -y --no-install-recommends ")
    expansion = re.search(r"\$\((.*)\)\s*$", line)
    assert expansion, line
    readme_pkgs = bash(f"printf '%s\\n' {expansion.group(0)}").split()  # the shell's own word splitting
    ci = CI_RUN.read_text(encoding="utf-8")
    assert "APT_PACKAGES=(" not in ci, "the list lives in .ci/apt-packages.txt only"
    reads = [ln for ln in ci.splitlines() if "apt-packages.txt" in ln and "APT_PACKAGES" in ln]
    assert len(reads) == 1, reads
    ci_pkgs = bash(f'{reads[0]}\nprintf "%s\\n" "${{APT_PACKAGES[@]}}"').split()
    assert ci_pkgs == readme_pkgs
    assert 'apt-get install -y -q --no-install-recommends "${APT_PACKAGES[@]}"' in ci
    # comments are stripped, the tools the tests need are there, no word is a comment's
    assert not any(p.startswith("#") or p.endswith(":") for p in readme_pkgs), readme_pkgs
    for pkg in ("libportaudio2", "pulseaudio", "pulseaudio-utils", "xvfb", "ffmpeg", "fluidsynth"):
        assert pkg in readme_pkgs
    assert len(set(readme_pkgs)) == len(readme_pkgs), "a package listed twice"


def test_every_listed_package_is_a_real_installed_package() -> None:
    """A typo in the list fails here (on CI, where .ci/run installed it), not as a skip elsewhere."""
    if shutil.which("dpkg-query") is None:
        missing("dpkg-query (not a Debian-like system)")
    pkgs = bash("sed 's/#.*//' .ci/apt-packages.txt").split()
    r = subprocess.run(["dpkg-query", "-W", "-f=${Package} ${Status}\\n", *pkgs], capture_output=True,
                       text=True, timeout=30)
    installed = {ln.split()[0] for ln in r.stdout.splitlines() if ln.endswith("install ok installed")}
    absent = [p for p in pkgs if p not in installed]
    if absent:
        missing(f"Debian packages from .ci/apt-packages.txt not installed: {' '.join(absent)}")


# -- the test command: CPU torch first, and CI runs exactly it ---------------------------------


def test_readme_test_command_sets_up_cpu_torch_first_and_ci_runs_it() -> None:
    ci = CI_RUN.read_text(encoding="utf-8")
    awk = re.search(r"TEST_CMD=\$\((awk .*README\.md)\)", ci)
    assert awk, "CI extracts the README's test command"
    cmd = bash(awk.group(1)).strip()
    steps = [s.strip() for s in cmd.split("&&")]
    torch_step = 'python3 -m pip install -q "torch==2.13.0" --extra-index-url https://download.pytorch.org/whl/cpu'
    assert steps == [torch_step, 'python3 -m pip install -q -e ".[cpu,train,dev]"',
                     "python3 -m pytest -q"], steps
    # CI installs nothing Python-side beyond pip itself: the README's command is the whole set-up
    assert not re.search(r"pip install[^\n]*torch", ci), "CI must not install torch itself"
    assert 'bash -c "set -euo pipefail; $TEST_CMD"' in ci
    # the pinned version is one the [train] extra accepts
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    train = pyproject["project"]["optional-dependencies"]["train"]
    floor = next(d for d in train if d.startswith("torch"))
    assert floor.startswith("torch>=2.") and (2, 13) >= tuple(int(x) for x in floor[7:].split(".")[:2])


# -- exit codes: README and code agree ------------------------------------------------------------


def readme_exit_codes() -> dict[str, int]:
    """README's "Exit codes: 0 ok (a, b); 1 ... (c, d); 2 ... (e, f)." as {item: code}."""
    text = " ".join(README.split())
    m = re.search(r"Exit codes: (.*?\))\.", text)
    assert m, "README states mer-live's exit codes"
    out: dict[str, int] = {}
    for code, items in re.findall(r"(\d) [^(;]*\(([^)]*)\)", m.group(1)):
        for item in re.split(r",\s*(?:or\s+)?|\s+or\s+", items):
            out[item.strip().replace("`", "")] = int(code)
    return out


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("exit")
    (d / "bad.toml").write_text('[osc]\nrate_hz = "fast"\n')
    (d / "bad.wav").write_bytes(b"RIFF not really audio")
    (d / "nocard.onnx").write_bytes(b"\x08\x07")
    return {"toml": d / "bad.toml", "wav": d / "bad.wav", "nocard": d / "nocard.onnx", "dir": d}


def _exit_cases(model: Path, f: dict[str, Path]) -> list[tuple[str, list[str]]]:
    """(README's item, the flags that make that case happen for real)."""
    m = ["--model", str(model), "--headless", "--no-osc", "--no-music-gate"]
    return [
        ("--duration", ["--demo", "--duration", "0.3", *m]),
        ("flags", ["--hop", "0", *m]),
        ("config file", ["--config", str(f["toml"]), *m]),
        ("OSC target", ["--osc", "nohost", "--model", str(model), "--headless"]),
        ("model file", ["--model", str(f["dir"] / "none.onnx"), "--headless", "--no-osc"]),
        ("card", ["--model", str(f["nocard"]), "--headless", "--no-osc"]),
        ("--require-gpu without CUDA", ["--require-gpu", *m]),
        ("input device", ["--device", "no-such-device-xyz", *m]),
        ("input file", ["--input", str(f["wav"]), *m]),
    ]


def test_exit_codes_are_the_readmes(loudness_model, bad_files) -> None:
    import onnxruntime as ort

    codes = readme_exit_codes()
    assert set(codes.values()) == {0, 1, 2}, codes
    has_cuda = "CUDAExecutionProvider" in ort.get_available_providers()
    for item, args in _exit_cases(loudness_model, bad_files):
        assert item in codes, f"README's exit codes do not mention {item!r}: {codes}"
        if item.startswith("--require-gpu") and has_cuda:
            continue  # a GPU machine: --require-gpu starts; the refusal is tested where CUDA is absent
        r = run_cli(*args, timeout=60)
        assert r.returncode == codes[item], f"{item}: exit {r.returncode}, README: {codes[item]}: {r.stderr}"
        assert "Traceback" not in r.stderr
        if codes[item]:
            errors = [ln for ln in r.stderr.splitlines() if ln.startswith("mer-live: error: ")]
            assert len(errors) == 1, (item, r.stderr)


def test_require_gpu_refuses_on_a_cpu_machine(loudness_model, tmp_path) -> None:
    """The flag reaches the model loader: a one-line error naming the active provider, before audio."""
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime has CUDA: --require-gpu may start here")
    for extra in ([], ["--provider", "cuda"]):
        r = run_cli("--require-gpu", *extra, "--demo", "--headless", "--no-osc", "--duration", "5",
                    "--model", str(loudness_model), timeout=60)
        assert r.returncode == 2, r.stderr
        assert r.stderr.strip().splitlines()[-1].startswith(
            "mer-live: error: --require-gpu: CUDA is not active (active provider: CPUExecutionProvider)")
        assert "input:" not in r.stderr and "A [" not in r.stdout  # refused before any audio
    cfg = tmp_path / "gpu.toml"
    cfg.write_text("[model]\nrequire_gpu = true\n")
    r = run_cli("--config", str(cfg), "--demo", "--headless", "--no-osc", "--model", str(loudness_model))
    assert r.returncode == 2 and "--require-gpu: CUDA is not active" in r.stderr


# -- show.toml has every key --print-config prints ---------------------------------------------


def _keys(text: str, commented_too: bool) -> set[tuple[str, str]]:
    """(section, key) of every ``key = value`` line, and of ``# key = ...`` lines when asked."""
    out, section = set(), None
    pat = re.compile(r"^\s*(#\s*)?([A-Za-z_][A-Za-z0-9_]*)\s*=")
    for line in text.splitlines():
        sec = re.match(r"^\s*\[([A-Za-z_]+)\]", line)
        if sec:
            section = sec.group(1)
            continue
        m = pat.match(line)
        if m and section and (commented_too or not m.group(1)):
            out.add((section, m.group(2)))
    return out


def test_show_toml_has_every_key_print_config_prints() -> None:
    r = run_cli("--print-config", timeout=30)
    assert r.returncode == 0, r.stderr
    printed = _keys(r.stdout, commented_too=True)
    show_text = (ROOT / "examples" / "show.toml").read_text(encoding="utf-8")
    shown = _keys(show_text, commented_too=True)
    assert len(printed) > 40
    assert printed - shown == set(), f"keys missing from examples/show.toml: {sorted(printed - shown)}"
    assert shown - printed == set(), f"show.toml keys mer-live does not know: {sorted(shown - printed)}"
    # every key has its comment (on its line or, for continued notes, the line after)
    lines = show_text.splitlines()
    for i, line in enumerate(lines):
        if re.match(r"^\s*(#\s*)?[a-z_]+\s*=", line):
            assert line.count("#") >= (2 if line.lstrip().startswith("#") else 1) or (
                i + 1 < len(lines) and lines[i + 1].lstrip().startswith("#")), f"no comment: {line!r}"
    # and the file itself is a valid config whose set values are the defaults
    r = run_cli("--config", str(ROOT / "examples" / "show.toml"), "--print-config", timeout=30)
    assert r.returncode == 0, r.stderr
    assert tomllib.loads(r.stdout) == tomllib.loads(run_cli("--print-config", timeout=30).stdout)


def test_unknown_osc_key_lists_enabled(tmp_path) -> None:
    cfg = tmp_path / "show.toml"
    cfg.write_text("[osc]\nenable = false\n")
    r = run_cli("--config", str(cfg), "--print-config", timeout=30)
    assert r.returncode == 2
    known = re.search(r"\(known: (.*)\)", r.stderr)
    assert known, r.stderr
    names = known.group(1).split(", ")
    assert "enabled" in names and "rate_hz" in names
    cfg.write_text("[osc]\nenabled = false\n")  # and what it lists really is accepted
    assert run_cli("--config", str(cfg), "--print-config", timeout=30).returncode == 0


# -- small rough edges of the CLI ---------------------------------------------------------------


@pytest.mark.parametrize("pick", ["0", "0,1", "-1"])
def test_pick_zero_is_a_plain_one_line_error(pick, loudness_model, tmp_path) -> None:
    r = run_cli(f"--pick={pick}", "--demo", "--headless", "--no-osc", "--model", str(loudness_model))
    assert r.returncode == 2
    want = f"mer-live: error: --pick must be 1-based channel numbers like 1,2, got '{pick}'"
    assert r.stderr.strip() == want
    cfg = tmp_path / "pick.toml"
    cfg.write_text("[pipeline]\npick = [0, 1]\n")
    r = run_cli("--config", str(cfg), "--print-config", timeout=30)
    assert r.returncode == 2
    assert r.stderr.strip() == ("mer-live: error: pick.toml: [pipeline] pick must be a list of 1-based "
                                "channels like [1, 2], got [0, 1]")


@pytest.mark.parametrize("other", [["--demo"], ["--input", "x.wav"]])
def test_device_with_demo_or_input_is_an_error(other, loudness_model) -> None:
    r = run_cli("--device", "2", *other, "--headless", "--no-osc", "--duration", "1", "--model",
                str(loudness_model), "--no-music-gate")
    assert r.returncode == 2
    assert r.stderr.strip() == f"mer-live: error: --device and {other[0]} cannot be used together"


def test_device_from_the_config_file_yields_to_demo(loudness_model, tmp_path) -> None:
    """A show file names the rig's device; --demo on the command line still runs the demo."""
    cfg = tmp_path / "show.toml"
    cfg.write_text('[capture]\ndevice = "Scarlett"\n')
    r = run_cli("--config", str(cfg), "--demo", "--headless", "--no-osc", "--duration", "0.5",
                "--model", str(loudness_model), "--no-music-gate")
    assert r.returncode == 0, r.stderr
    assert "mer-live: input: playing demo" in r.stderr


def test_help_shows_the_dataclass_defaults() -> None:
    from mer_live.live.pipeline import PipelineConfig
    from mer_live.outputs.osc import OscConfig

    r = run_cli("--help", timeout=30)
    assert r.returncode == 0
    text = " ".join(r.stdout.split())
    p, o = PipelineConfig(), OscConfig()
    for flag, value in (("--hop S", p.hop_s), ("--attack S", p.attack_s), ("--release S", p.release_s),
                        ("--osc-rate HZ", o.rate_hz)):
        m = re.search(re.escape(flag) + r" [^-]*?\(default ([0-9.]+)\)", text)
        assert m, f"{flag}: no default in --help"
        assert float(m.group(1)) == value


def test_start_and_stop_notices_read_right(loudness_model) -> None:
    """No 'input: input:' and '1 estimate' (not '1 estimates'), on real runs of the demo."""
    counts = set()
    for hop, duration in (("0.5", "0.75"), ("0.1", "0.65")):  # about 1 estimate, then about 6
        r = run_cli("--demo", "--headless", "--no-osc", "--hop", hop, "--duration", duration,
                    "--model", str(loudness_model), "--no-music-gate")
        assert r.returncode == 0, r.stderr
        assert "input: input:" not in r.stderr and "mer-live: input: playing demo" in r.stderr
        stop = [ln for ln in r.stderr.splitlines() if "stopped after" in ln]
        m = re.search(r": (\d+) (estimates?), 0 skipped$", stop[-1]) if len(stop) == 1 else None
        assert m, stop
        n = int(m.group(1))
        assert m.group(2) == ("estimate" if n == 1 else "estimates"), stop
        counts.add(n)
    assert 1 in counts or len(counts) > 1, counts  # both forms seen, unless the machine stalled


def test_input_shorter_than_the_window_is_noted(tmp_path) -> None:
    """The shipped model's window is 6 s: a 2-s file says so in one notice line, a long one does not."""
    import numpy as np
    import soundfile as sf

    short = tmp_path / "short.wav"
    sf.write(short, (0.1 * np.sin(np.arange(16000 * 2) / 16000 * 2 * np.pi * 440)).astype(np.float32), 16000)
    r = run_cli("--input", str(short), "--headless", "--no-osc", "--no-music-gate", timeout=60)
    assert r.returncode == 0, r.stderr
    notes = [ln for ln in r.stderr.splitlines() if "shorter than" in ln]
    assert notes == ["mer-live: note: short.wav (2.0 s) is shorter than the model's 6-s window: one "
                     "estimate, on a zero-padded window at its end (--loop fills a window)"], r.stderr
    r = run_cli("--input", str(short), "--loop", "--duration", "0.5", "--headless", "--no-osc",
                "--no-music-gate", timeout=60)
    assert [ln for ln in r.stderr.splitlines() if "shorter than" in ln] == [
        "mer-live: note: short.wav (2.0 s) is shorter than the model's 6-s window: no emotion estimate "
        "until it has looped to a full window"], r.stderr
    longer = tmp_path / "long.wav"
    sf.write(longer, np.zeros(16000 * 7, np.float32), 16000)
    r = run_cli("--input", str(longer), "--duration", "0.5", "--headless", "--no-osc", "--no-music-gate")
    assert r.returncode == 0 and "shorter than" not in r.stderr, r.stderr

