"""Config: TOML files validated at the edge, one-line errors naming key and file, flags win."""

from __future__ import annotations

from pathlib import Path

import pytest

from mer_live.config import Config, ConfigError, build_config, dumps_toml, load_toml, read_toml

ROOT = Path(__file__).resolve().parents[1]

VALID = """
[capture]
device = "pulse"
samplerate = 48000
channels = 2

[source]
input = "rehearsal.wav"

[model]
path = "models/my.onnx"
provider = "cpu"
threads = 2

[pipeline]
hop_s = 0.2
pick = [1, 2]
gain_db = 6
on_silence = "neutral"

[osc]
targets = ["127.0.0.1:9000", "10.0.0.5:8000"]
prefix = "/show"
rate_hz = 20
value_range = "pm1"

[gui]
headless = true
history_s = 30
trail_s = 5

[log]
verbosity = 1
"""


def write(tmp_path: Path, text: str, name: str = "show.toml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def error_of(tmp_path: Path, text: str, overrides=None) -> str:
    with pytest.raises(ConfigError) as info:
        load_toml(write(tmp_path, text), overrides)
    msg = str(info.value)
    assert "\n" not in msg
    return msg


def test_valid_file(tmp_path) -> None:
    cfg = load_toml(write(tmp_path, VALID))
    assert isinstance(cfg, Config)
    assert cfg.capture.device == "pulse" and cfg.capture.samplerate == 48000 and cfg.capture.channels == 2
    assert cfg.model.provider == "cpu" and cfg.model.threads == 2
    # relative paths in a file are relative to the file's folder (never executed or evaluated)
    assert cfg.model.path == tmp_path / "models" / "my.onnx"
    assert cfg.source.input == tmp_path / "rehearsal.wav"
    assert cfg.pipeline.hop_s == 0.2 and isinstance(cfg.pipeline.hop_s, float)
    assert cfg.pipeline.pick == (1, 2)
    assert cfg.pipeline.gain_db == 6.0 and cfg.pipeline.on_silence == "neutral"
    assert cfg.osc.targets == ["127.0.0.1:9000", "10.0.0.5:8000"]
    assert cfg.osc.prefix == "/show" and cfg.osc.rate_hz == 20.0 and cfg.osc.value_range == "pm1"
    assert cfg.osc_enabled is True
    assert cfg.gui.headless is True and cfg.gui.history_s == 30.0 and cfg.gui.trail_s == 5.0
    assert cfg.log.verbosity == 1
    # untouched sections keep their defaults
    assert cfg.pipeline.attack_s == Config().pipeline.attack_s


def test_empty_file_gives_defaults(tmp_path) -> None:
    cfg = load_toml(write(tmp_path, ""))
    assert cfg.osc.targets == ["127.0.0.1:9000"] and cfg.model.path is None and cfg.osc_enabled


def test_example_show_toml_is_valid() -> None:
    cfg = load_toml(ROOT / "examples" / "show.toml")
    assert cfg.osc.targets and cfg.pipeline.hop_s > 0


def test_unknown_key(tmp_path) -> None:
    msg = error_of(tmp_path, "[osc]\nrate = 10\n")
    assert msg.startswith("show.toml: unknown key [osc] rate (known: enabled, targets, prefix, rate_hz")


def test_unknown_section(tmp_path) -> None:
    msg = error_of(tmp_path, "[lights]\ncolor = 1\n")
    assert msg.startswith("show.toml: unknown section [lights]")


def test_wrong_type_names_key_and_file(tmp_path) -> None:
    assert error_of(tmp_path, '[osc]\nrate_hz = "fast"\n') == (
        'show.toml: [osc] rate_hz must be a number in 0.1..1000, got "fast"'
    )
    assert error_of(tmp_path, '[gui]\nheadless = "yes"\n') == (
        'show.toml: [gui] headless must be true or false, got "yes"'
    )
    msg = error_of(tmp_path, "[model]\nthreads = 1.5\n")
    assert msg.startswith("show.toml: [model] threads must be an integer")
    assert error_of(tmp_path, '[model]\nprovider = "tpu"\n') == (
        'show.toml: [model] provider must be one of "auto", "cuda", "cpu", got "tpu"'
    )
    assert error_of(tmp_path, "[osc]\ntargets = [9000]\n").startswith("show.toml: [osc] targets must be")
    assert error_of(tmp_path, "osc = 3\n") == "show.toml: [osc] must be a table, got 3"


def test_out_of_range(tmp_path) -> None:
    assert error_of(tmp_path, "[pipeline]\nhop_s = 0\n") == (
        "show.toml: [pipeline] hop_s must be a number of seconds in 0.01..10, got 0"
    )
    assert error_of(tmp_path, "[capture]\nchannels = 0\n").startswith("show.toml: [capture] channels must be")


def test_module_validation_is_reported_the_same_way(tmp_path) -> None:
    # checks that live in the other modules' configs (here: OscConfig.validate, PipelineConfig)
    msg = error_of(tmp_path, '[osc]\nprefix = "mer"\n')
    assert msg.startswith("show.toml: [osc] prefix must start with '/'")
    assert error_of(tmp_path, "[pipeline]\npick = [1, 1]\n").startswith("show.toml: [pipeline] pick lists")
    assert error_of(tmp_path, "[gui]\nhistory_s = 10\ntrail_s = 20\n").startswith(
        "show.toml: [gui] trail_s (20.0) must not exceed"
    )


def test_bad_toml_and_missing_file(tmp_path) -> None:
    assert error_of(tmp_path, "[osc\n").startswith("show.toml: not valid TOML:")
    with pytest.raises(ConfigError, match=r"^config file not found: .*nope\.toml$"):
        load_toml(tmp_path / "nope.toml")
    (tmp_path / "bin.toml").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ConfigError, match="^bin.toml: not valid TOML"):
        read_toml(tmp_path / "bin.toml")


def test_cli_overrides_toml(tmp_path) -> None:
    path = write(tmp_path, VALID)
    overrides = {
        ("osc", "rate_hz"): (60.0, "--osc-rate"),
        ("osc", "targets"): (["127.0.0.1:7000"], "--osc"),
        ("pipeline", "hop_s"): (0.05, "--hop"),
        ("model", "path"): ("other.onnx", "--model"),
        ("osc", "enabled"): (False, "--no-osc"),
    }
    cfg = load_toml(path, overrides)
    assert cfg.osc.rate_hz == 60.0 and cfg.osc.targets == ["127.0.0.1:7000"]
    assert cfg.pipeline.hop_s == 0.05
    assert cfg.model.path == Path("other.onnx")  # flags are relative to the current folder
    assert cfg.osc_enabled is False
    assert cfg.osc.prefix == "/show" and cfg.pipeline.pick == (1, 2)  # the rest from the file


def test_bad_override_names_the_flag(tmp_path) -> None:
    msg = error_of(tmp_path, VALID, {("pipeline", "hop_s"): (-1.0, "--hop")})
    assert msg == "--hop must be a number of seconds in 0.01..10, got -1.0"
    with pytest.raises(ConfigError) as info:
        build_config({}, overrides={("osc", "targets"): (["nohost"], "--osc")})
    assert str(info.value).startswith("--osc: ") and "nohost" in str(info.value)


def test_paths_are_data_not_code(tmp_path) -> None:
    cfg = load_toml(write(tmp_path, '[model]\npath = "$(touch pwned)"\n[log]\nfile = "`id`.log"\n'))
    assert cfg.model.path == tmp_path / "$(touch pwned)"
    assert not (tmp_path / "pwned").exists() and not Path("pwned").exists()


def test_print_config_round_trips(tmp_path) -> None:
    cfg = load_toml(write(tmp_path, VALID))
    again = load_toml(write(tmp_path, dumps_toml(cfg), "again.toml"))
    assert again == cfg
