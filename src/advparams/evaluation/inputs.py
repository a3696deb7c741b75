"""What an evaluation reads from this machine, checked before its run folder is made:
the data folder, the data set itself and the checkpoints the config names.

These are not part of reading the config (:func:`~advparams.evaluation.config.config_from_mapping`
stays free of the file system, so a run's resolved config can be read back anywhere,
for a report, after its checkpoints are gone); :func:`~advparams.evaluation.harness.evaluate_protection`
calls :func:`check_inputs` first, so a wrong path is refused with nothing created.
"""

from __future__ import annotations

from pathlib import Path

from advparams.errors import AdvParamsError, ConfigError
from advparams.evaluation.config import EvalConfig


def check_inputs(config: EvalConfig) -> None:
    """Refuses a ``data_dir`` that is not a folder (or a missing one where the data set
    needs it) and a checkpoint of one of the run's seeds that is not a readable
    checkpoint folder (``model.json``, ``model.safetensors``, a registered architecture).

    Raises:
        ConfigError: naming the value's place in the config (``data_dir``, ``checkpoints.S``).
    """
    from advparams.checkpoint import WEIGHTS, read_meta
    from advparams.data import DATASETS
    from advparams.models import MODELS

    spec = DATASETS.get(config.dataset)
    if config.data_dir is not None and not Path(config.data_dir).is_dir():
        what = "does not exist" if not Path(config.data_dir).exists() else "is not a folder"
        raise ConfigError(f"data_dir {config.data_dir[:200]!r} {what}: name the folder that holds {config.dataset}")
    if config.data_dir is None and spec.needs_root:
        raise ConfigError(
            f"data_dir is needed: {config.dataset} cannot be downloaded here (set data_dir, or pass --data-dir)"
        )
    for seed in config.seeds:
        path = config.checkpoints.get(seed)
        if path is None:
            continue
        try:
            meta = read_meta(path)
            MODELS.get(meta["architecture"])
        except AdvParamsError as exc:
            raise ConfigError(f"checkpoints.{seed}: {exc}") from None
        weights = Path(path) / WEIGHTS
        if not weights.is_file():
            raise ConfigError(f"checkpoints.{seed}: checkpoint {path} has no {WEIGHTS}")


__all__ = ["check_inputs"]
