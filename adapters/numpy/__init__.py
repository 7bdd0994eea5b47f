"""NumPy: the spec itself is the subject (``spec.<rule>``); the reference the others are held to."""

from optspec.adapters.frameworks import Framework

FRAMEWORK = Framework(name="numpy", modules=("numpy",), extra="conformance", fork_safe=True)
