"""Where output goes: results to stdout, logs and progress to stderr; third-party noise off.

A command's result (a table, JSON) is what a pipe should receive; everything else (progress,
"report written to ...", library warnings) goes to stderr. Libraries we wrap (transformers,
datasets, TRL, torch) log progress bars, dict logs and deprecation warnings that bury the result;
`quiet_third_party` silences them unless `--verbose` is given.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings

from rich.console import Console
from rich.table import Table

out = Console()  # results
log = Console(stderr=True)  # everything else

WIDE = "200"  # when stdout is not a terminal there is nothing to fit: do not cut tables at 80 columns


def quiet_third_party(verbose: bool = False) -> None:
    """Silence library logging, progress bars and warnings (call before heavy imports)."""
    if not sys.stdout.isatty():
        os.environ.setdefault("COLUMNS", WIDE)
    if verbose:
        return
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("DATASETS_VERBOSITY", "error")
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TQDM_DISABLE", "1")  # tqdm bars (datasets' parquet writer, TRL)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    for name in ("transformers", "datasets", "trl", "peft", "accelerate", "torch", "httpx", "urllib3"):
        logging.getLogger(name).setLevel(logging.ERROR)
    for category in (FutureWarning, DeprecationWarning, UserWarning):
        for module in ("transformers", "trl", "peft", "torch", "datasets", "accelerate"):
            warnings.filterwarnings("ignore", category=category, module=module)
    warnings.filterwarnings("ignore", message=r".*past_key_values.*")
    # Libraries already imported read no environment any more: tell them directly.
    if "transformers" in sys.modules:
        sys.modules["transformers"].logging.set_verbosity_error()
        sys.modules["transformers"].logging.disable_progress_bar()
    if "datasets" in sys.modules:
        sys.modules["datasets"].logging.set_verbosity_error()
        sys.modules["datasets"].disable_progress_bars()


def fit(table: Table) -> Table:
    """Let a table fit the terminal without cutting names: every column is at least as wide as
    the longest word of its header, and cells wrap (fold) instead of ending in an ellipsis."""
    for col in table.columns:
        words = str(col.header).split() or [""]
        col.min_width = max(col.min_width or 0, max(len(w) for w in words))
        col.overflow = "fold"
    return table
