"""MindSpore (``mindspore``, CPU, PyNative mode): ``mindspore.nn`` and ``mindspore.experimental.optim``, and plugins.

Its ``nn.AdamWeightDecay`` is BERT's rule, the first runnable subject of the
``bert`` preset.  Subjects run in float32 by default: several of its CPU
kernels have no float64 form (``nn.AdamWeightDecay`` casts float64
parameters to float32 and back), and none has bfloat16 (``docs/DEVIATIONS.md``).
MindSpore needs ``numpy<2``, so it lives in an environment of its own
(``nox -s separate``).  C++ warnings are kept to errors (``GLOG_v``), and the
IR dump of a failed compilation goes to a temporary folder, not the working
directory (``MS_OM_PATH``).  A process that stepped MindSpore cannot fork.
"""

import os
import tempfile

from optspec.adapters.frameworks import Framework


def _pynative_on_cpu(mindspore) -> None:
    mindspore.set_context(mode=mindspore.PYNATIVE_MODE)
    mindspore.set_device("CPU")


FRAMEWORK = Framework(name="mindspore", modules=("mindspore",), extra="mindspore", default_dtype="float32",
                      native_convention="torch", configure=_pynative_on_cpu, array_namespace=False,
                      environment={"GLOG_v": "3",
                                   "MS_OM_PATH": os.path.join(tempfile.gettempdir(), "optspec-mindspore")})
