"""PaddlePaddle (``paddlepaddle``): ``paddle.optimizer`` and plugins, in dygraph mode.

Paddle has no Array API namespace, so the spec's reference runs on NumPy's.
Subjects run in float32 by default: in float64 Paddle's AdamW rounds its
decay coefficient, and Momentum its μ and λ, to float32 inside the kernel
(C++ ``float`` attributes), which ``docs/DEVIATIONS.md`` lists.  Its CPU
kernels are float64 and float32 only (SGD also bfloat16): elsewhere the
certificate says "not applicable".  Importing Paddle needs ``setuptools``
(``paddle/utils/cpp_extension/cpp_extension.py``), which the extra installs.
Imported after TensorFlow, ``libpaddle`` crashes the process (a segmentation
fault in ``paddle/base/core.py``, Paddle 3.3.1 beside TensorFlow 2.21): that
import is refused in one line, and the registry lists Paddle before TensorFlow.
"""

from optspec.adapters.frameworks import Framework

FRAMEWORK = Framework(name="paddle", modules=("paddle",), extra="paddle", default_dtype="float32",
                      native_convention="torch", fork_safe=True, array_namespace=False,
                      crashes_after=("tensorflow",),
                      import_noise=(r".*UserWarning: No ccache found", r"\s+warnings\.warn\(warning_message\)"))
