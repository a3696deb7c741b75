"""The evaluation: the families' studies -> units -> an executor -> rows.

>>> from advparams.evaluation import config_from_mapping
>>> cfg = config_from_mapping({"name": "t", "dataset": "synthetic", "model": "lenet",
...                            "schemes": [{"name": "advparams"}]})
>>> cfg.seeds
(0, 1, 2)
"""

from advparams.evaluation.config import AttackSpec, EvalConfig, SchemeSpec, config_from_mapping, load_config
from advparams.evaluation.engine import RayExecutor, SerialExecutor, Study, Unit, make_executor
from advparams.evaluation.harness import HarnessProgress, evaluate_protection, studies
from advparams.evaluation.rows import ResultRow, RowWriter, read_rows
from advparams.evaluation.run import CONFIG_FILE, RESULTS_FILE, RunFolder, open_run

__all__ = [
    "CONFIG_FILE",
    "RESULTS_FILE",
    "AttackSpec",
    "EvalConfig",
    "HarnessProgress",
    "RayExecutor",
    "ResultRow",
    "RowWriter",
    "RunFolder",
    "SchemeSpec",
    "SerialExecutor",
    "Study",
    "Unit",
    "config_from_mapping",
    "evaluate_protection",
    "load_config",
    "make_executor",
    "open_run",
    "read_rows",
    "studies",
]
