"""advparams: active and passive intellectual-property protection for PyTorch models.

The core is AdvParams (Xue et al., 2021): lock a trained classifier by adversarially
perturbing a handful of its parameters; the secret key restores it bit-exactly.

Example:
    >>> import torch
    >>> from advparams import AdvParams, unlock
    >>> from advparams.testing import tiny_trained_classifier
    >>> model, data = tiny_trained_classifier(seed=0)
    >>> result = AdvParams(AdvParams.Config(max_params=20)).lock(model, data)
    >>> result.report.params_changed <= 20
    True
    >>> restored = unlock(result.model, result.key)
    >>> all(torch.equal(a, b) for a, b in zip(restored.state_dict().values(), model.state_dict().values()))
    True
"""

import os

# MKL's matrix products give the same bits whatever the thread count only in its strict
# reproducible mode, which must be chosen before MKL's first call: see
# advparams.devices.reproducible_numerics. A user's own MKL_CBWR is kept.
os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")

from advparams.checkpoint import Checkpoint, load_checkpoint, save_checkpoint  # noqa: E402
from advparams.data import list_datasets, load_dataset  # noqa: E402
from advparams.fingerprint import model_fingerprint  # noqa: E402
from advparams.keys import Key, load_key, relock, save_key, unlock  # noqa: E402
from advparams.locked import save_locked  # noqa: E402
from advparams.metrics import accuracy  # noqa: E402
from advparams.models import build_model, list_models  # noqa: E402
from advparams.schemes import SCHEMES, AdvParams, AdvParamsConfig, LockResult, list_schemes  # noqa: E402
from advparams.training import TrainConfig, train  # noqa: E402
from advparams.version import __version__  # noqa: E402

__all__ = [
    "SCHEMES",
    "AdvParams",
    "AdvParamsConfig",
    "Checkpoint",
    "Key",
    "LockResult",
    "TrainConfig",
    "__version__",
    "accuracy",
    "build_model",
    "list_datasets",
    "list_models",
    "list_schemes",
    "load_checkpoint",
    "load_dataset",
    "load_key",
    "model_fingerprint",
    "relock",
    "save_checkpoint",
    "save_key",
    "save_locked",
    "train",
    "unlock",
]
