"""`bodytalk train` on the files it reads and does not own (an ``init`` checkpoint, a base model):
a bad one is one line on stderr and exit 2, never a traceback."""
from __future__ import annotations

import shutil

import pytest

from bodytalk.model import checkpoint
from bodytalk.model.registry import PACKAGED
from bodytalk.train import run


def _init_with(tmp_path, spoil) -> str:
    """A copy of the shipped demo checkpoint, spoiled by ``spoil(folder)``."""
    folder = tmp_path / "ck"
    shutil.copytree(PACKAGED, folder)
    spoil(folder)
    return str(folder)


def _truncate(file):
    data = file.read_bytes()
    file.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize("spoil, says", [
    (lambda f: shutil.rmtree(f), "is not a bodytalk checkpoint (no config.json)"),
    (lambda f: (f / "config.json").write_text("{not json"), "config.json: not JSON"),
    (lambda f: (f / "config.json").write_text("[1, 2]"), "config.json: format 'list'"),
    (lambda f: _truncate(f / "encoder.safetensors"), "is not a readable bodytalk checkpoint"),
], ids=["missing", "not-json", "not-an-object", "truncated-weights"])
def test_a_bad_init_checkpoint_is_one_line(tmp_path, capsys, spoil, says):
    init = _init_with(tmp_path, spoil)
    assert run.main(["--config", "tiny_instruct", "--out", str(tmp_path / "run"), f"init={init}"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("bodytalk train: ") and says in err and "\n" not in err


def test_a_missing_base_model_is_one_line(tmp_path, capsys):
    base = tmp_path / "no-such-model"
    assert run.main(["--config", "tiny_instruct", "--out", str(tmp_path / "run"), f"llm.base={base}"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"bodytalk train: base model folder {base} does not exist"


def test_a_corrupt_checkpoint_is_a_checkpoint_error_to_every_loader(tmp_path):
    """CheckpointError is a ValueError: the loaders that caught ValueError (eval, serve) still do."""
    folder = _init_with(tmp_path, lambda f: _truncate(f / "projector.safetensors"))
    with pytest.raises(checkpoint.CheckpointError, match="not a readable bodytalk checkpoint") as info:
        checkpoint.load(folder)
    assert isinstance(info.value, ValueError)
