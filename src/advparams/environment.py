"""What a measurement ran on (recorded beside every result)."""

from __future__ import annotations

import os
import platform
from typing import Any

import torch

from advparams.version import __version__


def environment(device: torch.device) -> dict[str, Any]:
    """Versions, CPU count, threads and device: enough to compare two sets of numbers."""
    env: dict[str, Any] = {
        "advparams": __version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "device": str(device),
        "machine": platform.machine(),
    }
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
    return env
