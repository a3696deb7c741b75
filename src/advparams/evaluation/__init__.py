"""The evaluation harness: train -> protect -> attack -> measure, as JSON lines.

>>> from advparams.evaluation import config_from_mapping
>>> cfg = config_from_mapping({"name": "t", "dataset": "synthetic", "model": "lenet",
...                            "schemes": [{"name": "advparams"}]})
>>> cfg.seeds
(0, 1, 2)
"""

from advparams.evaluation.config import AttackSpec, EvalConfig, SchemeSpec, config_from_mapping, load_config
from advparams.evaluation.harness import Harness, HarnessProgress, evaluate_protection
from advparams.evaluation.rows import ResultRow, RowWriter, read_rows
from advparams.evaluation.run import CONFIG_FILE, RESULTS_FILE, RunFolder, open_run

__all__ = [
    "CONFIG_FILE",
    "RESULTS_FILE",
    "AttackSpec",
    "EvalConfig",
    "Harness",
    "HarnessProgress",
    "ResultRow",
    "RowWriter",
    "RunFolder",
    "SchemeSpec",
    "config_from_mapping",
    "evaluate_protection",
    "load_config",
    "open_run",
    "read_rows",
]
