"""Corrupt, truncated and unknown files are reported as such (file, format tried, why), never as pickles that
need trust (issue 11 item 1), in the library and in the CLI (exit status 2)."""
from __future__ import annotations

import pickle
import random
import zipfile
from pathlib import Path

import ckpt_writers as W
import pytest
import torch

from spectral.checkpoints.errors import (
    CorruptCheckpointError,
    TruncatedCheckpointError,
    UnknownCheckpointFormatError,
    UntrustedPickleError,
)
from spectral.checkpoints.formats import (
    SAFETENSORS,
    TORCH_LEGACY,
    TORCH_ZIP,
    load_checkpoint,
    read_object,
    sniff_format,
)


def _random_bytes(n: int, seed: int) -> bytes:
    data = bytearray(random.Random(seed).getrandbits(8) for _ in range(n))
    data[0] = 0x7A  # not 0x80 (pickle), not 'P' (zip): the draw is pinned so the test cannot flip
    return bytes(data)


@pytest.fixture(scope="module")
def ft(tiny_models):
    return tiny_models[1]["MNIST"]


def _cut(path: Path, out: Path) -> Path:
    data = path.read_bytes()
    out.write_bytes(data[: len(data) // 2])
    return out


def test_random_bytes_named_pt_are_an_unknown_format_not_a_pickle(tmp_path):
    path = tmp_path / "zeroshot.pt"
    path.write_bytes(_random_bytes(4096, seed=1))
    for trust in (False, True):
        with pytest.raises(UnknownCheckpointFormatError) as err:
            load_checkpoint(path, trust_pickle=trust)
        message = str(err.value)
        assert str(path) in message
        assert "pickled Python object" not in message and "Trust pickled" not in message
        # what was expected: every format tried, with its signature, and the bytes that were found
        for name in (SAFETENSORS, TORCH_ZIP, TORCH_LEGACY):
            assert name in message
        assert "PK\\x03\\x04" in message and "7a " in message


def test_truncated_zip_names_file_format_and_truncation(ft, tmp_path):
    cut = _cut(W.write_open_clip_pt(ft, tmp_path / "finetuned.pt"), tmp_path / "cut.pt")
    with pytest.raises(TruncatedCheckpointError) as err:
        read_object(cut)
    message = str(err.value)
    assert str(cut) in message and TORCH_ZIP in message and "truncated" in message
    assert not isinstance(err.value, UntrustedPickleError)


def test_truncated_safetensors_names_file_format_and_sizes(ft, tmp_path):
    full = W.write_open_clip_safetensors(ft, tmp_path / "w.safetensors")
    cut = _cut(full, tmp_path / "cut.safetensors")
    with pytest.raises(TruncatedCheckpointError) as err:
        read_object(cut)
    message = str(err.value)
    assert str(cut) in message and "safetensors" in message and "truncated" in message
    assert f"{cut.stat().st_size} bytes" in message


def test_wrong_magic_is_reported_with_the_magic_expected(ft, tmp_path):
    legacy = tmp_path / "legacy.pt"
    torch.save(ft.state_dict(), legacy, _use_new_zipfile_serialization=False)
    assert sniff_format(legacy) == TORCH_LEGACY
    data = bytearray(legacy.read_bytes())
    data[5] ^= 0xFF  # inside the pickled magic number
    bad = tmp_path / "badmagic.pt"
    bad.write_bytes(bytes(data))
    with pytest.raises(CorruptCheckpointError) as err:
        load_checkpoint(bad, trust_pickle=True)
    message = str(err.value)
    assert str(bad) in message and "magic number" in message and TORCH_LEGACY in message
    assert "0x1950a86a20f9469cfc6c" in message

    # a bare pickle.dump: a pickle, but not a torch.save file
    bare = tmp_path / "bare.pt"
    bare.write_bytes(pickle.dumps({"visual.conv1.weight": [1.0]}, protocol=4))
    with pytest.raises(CorruptCheckpointError, match=r"bare\.pt: wrong magic number.*protocol 4"):
        read_object(bare)

    # an image renamed .safetensors
    image = tmp_path / "model.safetensors"
    image.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    with pytest.raises(UnknownCheckpointFormatError, match=r"model\.safetensors.*'\.safetensors'.*89 50 4e 47"):
        read_object(image)


def test_zip_that_is_not_a_torch_archive(tmp_path):
    path = tmp_path / "archive.pt"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("notes/readme.txt", "hello")
    with pytest.raises(CorruptCheckpointError, match=r"archive\.pt: a zip archive but not a torch\.save one.*"
                                                     r"no data\.pkl.*notes/readme\.txt"):
        read_object(path)


def test_corrupt_safetensors_header(tmp_path):
    path = tmp_path / "bad.safetensors"
    header = b'{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}'  # one brace short
    path.write_bytes(len(header).to_bytes(8, "little") + header + bytes(8))
    with pytest.raises(CorruptCheckpointError, match=r"bad\.safetensors: corrupt safetensors file: .*JSON header"):
        read_object(path)


def test_corrupt_pickle_data_after_a_valid_magic_is_corrupt_not_untrusted(ft, tmp_path):
    legacy = tmp_path / "legacy.pt"
    torch.save(ft.state_dict(), legacy, _use_new_zipfile_serialization=False)
    data = bytearray(legacy.read_bytes())
    data[40:48] = b"\xfe" * 8  # garbage opcodes right after the magic number and protocol
    bad = tmp_path / "garbled.pt"
    bad.write_bytes(bytes(data))
    with pytest.raises((CorruptCheckpointError, TruncatedCheckpointError)) as err:
        read_object(bad)
    assert str(bad) in str(err.value) and TORCH_LEGACY in str(err.value)
    assert not isinstance(err.value, UntrustedPickleError)


def test_a_real_pickle_still_asks_for_trust(ft, tmp_path):
    path = W.write_task_vectors_pickle(ft, tmp_path / "finetuned.pt")
    with pytest.raises(UntrustedPickleError, match=r"pickled Python object \(torch\.save zip archive\)"):
        read_object(path)


def test_cli_reports_a_random_bytes_pool_as_corrupt_with_exit_2(tmp_path, capsys):
    from spectral.cli import main

    folder = tmp_path / "pool"
    for i, name in enumerate(["zeroshot.pt", "MNIST/finetuned.pt", "SVHN/finetuned.pt"]):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(_random_bytes(2048, seed=10 + i))
    code = main(["merge", "--pool", str(folder), "--method", "task_arithmetic", "-o", str(tmp_path / "m.safetensors"),
                 "--device", "cpu", "--cache-dir", str(tmp_path / "cache")])
    err = capsys.readouterr().err
    assert code == 2
    assert str(folder / "zeroshot.pt") in err and "not a checkpoint in any format" in err
    assert TORCH_ZIP in err and "--trust-pickle" not in err
    assert not (tmp_path / "m.safetensors").exists()


def test_a_protocol_4_legacy_file_is_a_pickle_that_needs_trust_not_corrupt(ft, tmp_path):
    """torch's weights-only reader refuses the FRAME opcode of pickle protocol 4: that is a valid pickle it
    cannot vouch for (trust reads it through the restricted unpickler), unlike a byte that is no opcode at all."""
    path = tmp_path / "p4.pt"
    torch.save(ft.state_dict(), path, pickle_protocol=4, _use_new_zipfile_serialization=False)
    with pytest.raises(UntrustedPickleError, match=r"p4\.pt: a legacy torch\.save file .*opcode FRAME"):
        read_object(path)
    loaded = read_object(path, trust_pickle=True)
    assert set(loaded) == set(ft.state_dict()) and torch.equal(loaded["visual.proj"], ft.state_dict()["visual.proj"])
