"""The `notetune` command as a user types it: outputs on disk, exit codes and one-line errors."""

import hashlib

import numpy as np
import pytest
from notetune.scripts.cli import main


def digest(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*.mid"))}


def test_sample_writes_midi_and_npz_reproducibly(tmp_path, tiny_prior_dir, capsys):
    for name in ("a", "b"):
        assert (
            main(
                [
                    "sample",
                    "--model",
                    tiny_prior_dir,
                    "--num",
                    "5",
                    "--seed",
                    "7",
                    "--out",
                    str(tmp_path / name),
                    "--format",
                    "midi,musicxml",
                ]
            )
            == 0
        )
    assert "tokens/s" in capsys.readouterr().out
    assert len(digest(tmp_path / "a")) == 5 and digest(tmp_path / "a") == digest(tmp_path / "b")
    assert len(list((tmp_path / "a").glob("*.musicxml"))) == 5
    with np.load(tmp_path / "a" / "samples.npz") as data:
        assert data["tokens"].shape == (5, 32)


def test_sample_wav_export(tmp_path, tiny_prior_dir):
    assert (
        main(
            [
                "sample",
                "--model",
                tiny_prior_dir,
                "--num",
                "2",
                "--length",
                "16",
                "--out",
                str(tmp_path),
                "--format",
                "wav",
            ]
        )
        == 0
    )
    wavs = sorted(tmp_path.glob("*.wav"))
    assert len(wavs) == 2 and all(w.stat().st_size > 10_000 for w in wavs)


def test_unknown_format_and_missing_model_are_one_line_errors(tmp_path, tiny_prior_dir, capsys):
    assert main(["sample", "--model", tiny_prior_dir, "--format", "mp3", "--out", str(tmp_path)]) == 2
    assert "unknown format 'mp3'" in capsys.readouterr().err
    assert main(["sample", "--model", str(tmp_path / "nope"), "--out", str(tmp_path)]) == 2
    assert "not found" in capsys.readouterr().err


def test_config_file_with_unknown_field_or_wrong_type_is_refused(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text("num = 4\ntemprature = 0.5\n")
    assert main(["sample", "--config", str(bad), "--out", str(tmp_path)]) == 2
    assert "unknown field 'temprature' (did you mean 'temperature'?)" in capsys.readouterr().err
    bad.write_text('num = "four"\n')
    assert main(["sample", "--config", str(bad), "--out", str(tmp_path)]) == 2
    assert "'num' must be an integer" in capsys.readouterr().err


def test_corpus_build_from_a_midi_folder(tmp_path, capsys):
    import pretty_midi

    folder = tmp_path / "midi"
    folder.mkdir()
    for i in range(3):
        pm = pretty_midi.PrettyMIDI()
        inst = pretty_midi.Instrument(0)
        for j, pitch in enumerate([60, 62, 64, 65, 67, 69, 71, 72, 71, 69][i:] + [60] * i):
            inst.notes.append(pretty_midi.Note(90, pitch, j * 0.5, j * 0.5 + 0.5))
        pm.instruments.append(inst)
        pm.write(str(folder / f"tune{i}.mid"))
    (folder / "broken.mid").write_bytes(b"not a midi file")
    out = tmp_path / "corpus.npz"
    assert main(["corpus", "build", "--no-music21", "--midi", str(folder), "--out", str(out), "--workers", "1"]) == 0
    printed = capsys.readouterr().out
    assert '"melodies": 3' in printed and '"corrupt": 1' in printed and out.is_file()


def test_corpus_build_with_nothing_usable_fails_clearly(tmp_path, capsys):
    folder = tmp_path / "midi"
    folder.mkdir()
    (folder / "broken.mid").write_bytes(b"junk")
    assert main(["corpus", "build", "--no-music21", "--midi", str(folder), "--out", str(tmp_path / "c.npz")]) == 2
    assert "the corpus is empty" in capsys.readouterr().err


@pytest.mark.parametrize("command", [["corpus", "build"], ["pretrain"], ["sample"], ["tune"]])
def test_help_text_comes_from_the_config_docstrings(command, capsys):
    with pytest.raises(SystemExit):
        main([*command, "--help"])
    assert "default:" in capsys.readouterr().out
