"""Ownership fingerprints that need no change to the model.

Registered fingerprints (:data:`FINGERPRINTS`) share one interface
(:class:`FingerprintScheme`): ``extract(model, data)`` reads a :class:`Fingerprint` off
the owner's model; ``score(suspect, fingerprint)`` says how similar a suspect is; the
threshold comes from null models at a stated false-positive rate (:func:`calibrate_on`)
and ``verify`` returns a :class:`~advparams.verification.Verification`, as watermarks do:

* ``infip``: InFIP (Xue et al. 2022), Deep Taylor Decomposition maps compared by SSIM;
* ``ipguard``: IPGuard (Cao, Jia and Gong 2021), points near the decision boundary,
  compared by the suspect's labels.

Fingerprint files: :mod:`advparams.fingerprints.fingerprintfile`.

Example:
    >>> from advparams.fingerprints import FINGERPRINTS
    >>> FINGERPRINTS.names()
    ['infip', 'ipguard']
"""

from advparams.fingerprints import infip, ipguard  # noqa: F401,I001  (registers)
from advparams.fingerprints.base import (
    FINGERPRINTS,
    Fingerprint,
    FingerprintScheme,
    calibrate_on,
    scheme_of,
    similarity,
    verify,
)
from advparams.fingerprints.fingerprintfile import load_fingerprint, save_fingerprint
from advparams.fingerprints.infip import InFIP, InFIPConfig, relevance_images
from advparams.fingerprints.ipguard import IPGuard, IPGuardConfig, boundary_loss
from advparams.fingerprints.relevance import dtd_relevance, fingerprint_images

__all__ = [
    "FINGERPRINTS",
    "Fingerprint",
    "FingerprintScheme",
    "IPGuard",
    "IPGuardConfig",
    "InFIP",
    "InFIPConfig",
    "boundary_loss",
    "calibrate_on",
    "dtd_relevance",
    "fingerprint_images",
    "load_fingerprint",
    "relevance_images",
    "save_fingerprint",
    "scheme_of",
    "similarity",
    "verify",
]
