"""``lstm-train train | export | evaluate``: the training command, apart from the service's ``lstm-service``.

Installed with the ``train`` extra; also runs as ``python -m training.cli train --dataset zh-sentiment ...``.

- :mod:`~training.cli.arguments`: the options (no torch: ``--help`` answers on any install);
- :mod:`~training.cli.commands`: what each subcommand does;
- :mod:`~training.cli.pipeline`: data → model → train → export → bundle as functions (``train_bundle``,
  also used by the test fixtures).
"""

from __future__ import annotations

import logging
import os
import shlex
import sys
from collections.abc import Sequence

from training.cli.arguments import PROG, build_parser, data_spec
from training.data.reading import DataError

logger = logging.getLogger("training")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("gensim").setLevel(logging.WARNING)  # it logs every second of word2vec training
    _hold_threads(getattr(args, "threads", None))
    try:
        from training.cli import commands  # torch is imported here, after --help and argument errors
    except ImportError as error:  # a serving-only install: say what is missing and how to get it
        logger.error(
            "%s needs the training dependencies (missing: %s); install them with: "
            "pip install -e '.[train]' in a clone of the repository (or make train-setup there)",
            PROG,
            error.name or error,
        )
        return 2

    command = f"{PROG} {shlex.join(argv)}"  # recorded in the manifest: how to train this model again
    try:
        return commands.run(args, data_spec(args), command)
    except (DataError, ValueError, FileNotFoundError) as error:
        logger.error("%s", error)
        return 2
    except KeyboardInterrupt:  # during training, commands says where the run stopped and how to resume
        logger.error("interrupted before training started: nothing was written")
        return 130


# The thread pools of OpenMP, OpenBLAS and MKL read these when their library loads (torch and scikit-learn
# are imported after this); training.cli.commands.run also limits the pools already loaded (threadpoolctl).
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def _hold_threads(threads: int | None) -> None:
    if threads is None or "torch" in sys.modules:  # set too late to matter (in-process calls, tests)
        return
    for variable in THREAD_VARIABLES:
        os.environ[variable] = str(max(1, threads))
