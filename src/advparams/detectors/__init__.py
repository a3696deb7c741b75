"""Backdoor detectors: which inputs carry a trigger, and which models hold a backdoor.

Registered detectors (:data:`DETECTORS`) share one interface (:class:`Detector`):
``fit(model, clean_data)`` learns what the method needs and calibrates the threshold for
a stated false-rejection rate on held-out clean inputs; ``score(x)`` (higher: more
suspicious) and ``detect(x)``:

* ``adversarial``: detection by intentional adversarial perturbation (Xue et al. 2021):
  a triggered input keeps its label under a small untargeted L2 perturbation;
* ``strip``: STRIP (Gao et al. 2019), the entropy of predictions on superimposed inputs;
* ``neural-cleanse``: Neural Cleanse (Wang et al. 2019), per-label trigger reverse
  engineering and MAD anomaly index (:attr:`Detector.inspection`), with its input filter.

:func:`sanitise` screens a training set. The ROC and threshold metrics are in
:mod:`advparams.metrics.screening`.

Example:
    >>> from advparams.detectors import DETECTORS
    >>> DETECTORS.names()
    ['adversarial', 'neural-cleanse', 'strip']
"""

from advparams.detectors import adversarial, neural_cleanse, strip  # noqa: F401,I001  (registers)
from advparams.detectors.adversarial import AdversarialConfig, AdversarialPerturbation, l2_attack
from advparams.detectors.base import DETECTORS, Detector, Facts
from advparams.detectors.neural_cleanse import NeuralCleanse, NeuralCleanseConfig, ReversedTrigger
from advparams.detectors.sanitise import Sanitised, sanitise
from advparams.detectors.strip import Strip, StripConfig, mean_entropy

__all__ = [
    "DETECTORS",
    "AdversarialConfig",
    "AdversarialPerturbation",
    "Detector",
    "Facts",
    "NeuralCleanse",
    "NeuralCleanseConfig",
    "ReversedTrigger",
    "Sanitised",
    "Strip",
    "StripConfig",
    "adversarial",
    "l2_attack",
    "mean_entropy",
    "neural_cleanse",
    "sanitise",
    "strip",
]
