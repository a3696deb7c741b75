"""How well a detection attack finds the entries of a secret key."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from advparams.keys.key import Key


def detection_scores(suspects: Mapping[str, Iterable[int]], key: Key) -> tuple[float, float]:
    """Precision and recall of ``suspects`` (tensor name -> flat indices) against ``key``.

    Precision is 0 when nothing is suspected; recall is 1 for an empty key.

    Example:
        >>> import torch
        >>> from advparams.keys import KeyEntry
        >>> key = Key((KeyEntry("w", torch.tensor([1, 5]), torch.zeros(2), torch.ones(2)),), "a", "b", "x")
        >>> detection_scores({"w": [5, 7, 9], "v": [1]}, key)
        (0.25, 0.5)
    """
    truth = {(name, int(i)) for name, idx in key.positions().items() for i in idx.tolist()}
    found = {(name, int(i)) for name, idx in suspects.items() for i in idx}
    hits = len(truth & found)
    precision = hits / len(found) if found else 0.0
    recall = hits / len(truth) if truth else 1.0
    return precision, recall
