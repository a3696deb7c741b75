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

from advparams.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from advparams.data import list_datasets, load_dataset
from advparams.fingerprint import model_fingerprint
from advparams.keys import Key, load_key, relock, save_key, unlock
from advparams.locked import save_locked
from advparams.metrics import accuracy
from advparams.models import build_model, list_models
from advparams.schemes import SCHEMES, AdvParams, AdvParamsConfig, LockResult, list_schemes
from advparams.training import TrainConfig, train
from advparams.usecases.locks import open_unlocked
from advparams.version import __version__

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
    "open_unlocked",
    "relock",
    "save_checkpoint",
    "save_key",
    "save_locked",
    "train",
    "unlock",
]
