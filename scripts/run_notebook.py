"""Execute a notebook in place of a person (nbclient); fails when a cell fails. `make notebook STUDY=<name>`."""
from __future__ import annotations

import argparse
import os
from pathlib import Path

import nbformat
from nbclient import NotebookClient


def run(path: Path, out: Path | None = None, timeout: int = 600) -> nbformat.NotebookNode:
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    if out is not None:
        nbformat.write(nb, out)
    return nb


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("notebook", type=Path)
    ap.add_argument("--out", type=Path, default=None, help="where to write the executed notebook")
    args = ap.parse_args()
    if os.environ.get("STUDY"):
        os.environ.setdefault("OSCSIM_STUDY", os.environ["STUDY"])
    run(args.notebook, args.out or Path("multirun") / f"{args.notebook.stem}.executed.ipynb")
    print("executed", args.notebook)


if __name__ == "__main__":
    main()
