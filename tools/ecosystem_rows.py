"""The rows of the ecosystem scoreboard: each optimizer, what its package claims, and what its source shows.

Every citation is a file (relative to site-packages) and lines of the
package at the version ``nox -s ecosystem`` installs (``ECOSYSTEM`` in the
noxfile): re-read them when a pin moves.  ``claims`` is the preset the
package presents the optimizer as, by its name or documentation (an
``AdamW`` offered as a drop-in for torch's claims ``torch``); the verdict
is ``certify`` against it.  ``reading`` is what the cited lines compute.
"""

from __future__ import annotations

from tools.ecosystem_records import Citation, Implementation, Reading, Unrun

_TORCH_ADAM = "torch/optim/adam.py"
_HF = "transformers/optimization.py"
_OPTIMI = "optimi/adam.py"
_BNB = "bitsandbytes/backends/default/ops.py"

TORCH = (
    Implementation(
        "torch AdamW (foreach)", "torch", "torch", "torch.optim.AdamW[foreach]", "torch", Reading("torch"),
        (Citation(_TORCH_ADAM, "691", "decay: params *= 1 - lr*wd before the step"),
         Citation(_TORCH_ADAM, "510, 544-546", "AMSGrad max of raw v; lr/bc1 * m / (sqrt(v)/sqrt(bc2) + eps)"))),
    Implementation(
        "torch AdamW (fused)", "torch", "torch", "torch.optim.AdamW[fused]", "torch", Reading("torch"),
        (Citation(_TORCH_ADAM, "802", "_fused_adam: torch._fused_adamw_, the same maths in one kernel"),),
        dtypes=("float32", "bfloat16")),
    Implementation(
        "HF transformers AdamW (legacy)", "transformers", "torch",
        "transformers.optimization:AdamW[no_deprecation_warning=True]", "hf_legacy", Reading("hf_legacy"),
        (Citation(_HF, "629-638", "signature: no amsgrad, no maximize"),
         Citation(_HF, "697-703", "denom = sqrt(v) + eps; step_size = lr*sqrt(bc2)/bc1 (epsilon hat)"),
         Citation(_HF, "715-716", "p -= lr*wd*p after the Adam step"))),
    Implementation(
        "HF transformers AdamW (correct_bias=False)", "transformers", "torch",
        "transformers.optimization:AdamW[no_deprecation_warning=True,correct_bias=False]", "hf_legacy",
        Reading("hf_legacy", {"bias_correction": False}),
        (Citation(_HF, "699-703", "with correct_bias=False, step_size = lr: no bias correction"),
         Citation(_HF, "715-716", "p -= lr*wd*p after the Adam step"))),
    Implementation(
        "torch-optimi AdamW", "torch-optimi", "torch", "optimi:AdamW", "torch", Reading("torch"),
        (Citation("optimi/adamw.py", "48-61", "signature: no amsgrad, no maximize"),
         Citation(_OPTIMI, "273, 373-375", "decay factor 1 - lr*wd applied before the step"),
         Citation(_OPTIMI, "396", "lr*m/(sqrt(v)+eps) on bias-corrected moments"),
         Citation(_OPTIMI, "384-393", "kahan_sum (default for bf16/fp16 parameters) uses the gradient as scratch: "
                  "grad.copy_(param), then grad.sub_(param)")),
        dtypes=("float32", "bfloat16")),
    Implementation(
        "torch-optimi AdamW (decouple_lr)", "torch-optimi", "torch", "optimi:AdamW[decouple_lr=True]", "paper",
        Reading("paper"),
        (Citation(_OPTIMI, "270-271", "decay by (lr/max_lr)*wd, max_lr the lr given at construction"),
         Citation("optimi/optimizer.py", "20-21", "max_lr recorded at construction"))),
    Implementation(
        "torchao _AdamW", "torchao", "torch", "torchao.optim:_AdamW", "torch", Reading("torch"),
        (Citation("torchao/optim/adam.py", "406-430", "_AdamW: block_size=inf, float32 state"),
         Citation("torchao/optim/adam.py", "183", "p -= lr*wd*p before the step"),
         Citation("torchao/optim/adam.py", "187-204", "m/bc1 / (sqrt(v/bc2) + eps): epsilon corrected"))),
    Implementation(
        "torchao _AdamW (bf16_stochastic_round, declared)", "torchao", "torch",
        "torchao.optim:_AdamW[bf16_stochastic_round=True]", "torch", Reading("torch"),
        (Citation("torchao/optim/adam.py", "74-85", "below the quantized sizes (all of _AdamW's: block_size=inf) the "
                  "state is zeros_like(p): bfloat16 for bfloat16 parameters"),
         Citation("torchao/optim/adam.py", "180-207", "p_f32 stepped in float32, then p.copy_(_fp32_to_bf16_sr(p_f32))"),
         Citation("torchao/optim/quant_utils.py", "121-150", "_fp32_to_bf16_sr: away from zero where 16 random bits fall below "
                  "the 16 bits bfloat16 drops: stochastic rounding")),
        dtypes=("bfloat16",), examples=10,
        state=("params=stochastic", "exp_avg=bfloat16", "exp_avg_sq=bfloat16", "max_exp_avg_sq=bfloat16")),
    Implementation(
        "torchao AdamW8bit", "torchao", "torch", "torchao.optim:AdamW8bit", "torch",
        Reading(None, outside="moments quantized to 8 bits, block by block, in tensors of 4096 elements or more; "
                "torch's convention below"),
        (Citation("torchao/optim/adam.py", "309", "AdamW8bit: the _AdamBase step on 8-bit state"),
         Citation("torchao/optim/adam.py", "74-76", "state quantized only for tensors of >= 4096 elements "
                  "(and a multiple of the block size); smaller ones keep float32 state"))),
    *(Implementation(
        f"torchao {cls} (its {preset} format declared)", "torchao", "torch", f"torchao.optim:{cls}", "torch",
        Reading("torch"),
        (Citation("torchao/optim/adam.py", "74-76", "state quantized in tensors of >= 4096 elements and a multiple "
                  "of the block; smaller ones keep float32 state"),
         Citation("torchao/optim/adam.py", "162-205", "torch's AdamW step in float32 from the dequantized state; "
                  "copy_ quantizes the new state"),
         Citation(f"torchao/optim/{module}", lines, codes)),
        dtypes=("float32", "bfloat16"), examples=10, state=(preset,))
      for cls, preset, module, lines, codes in (
          ("AdamW8bit", "torchao-8bit", "subclass_8bit.py", "31-38, 104-117",
           "bitsandbytes' dynamic maps, signed for m and unsigned for v, block 256"),
          ("AdamW4bit", "torchao-4bit", "subclass_4bit.py", "34-41, 115-130",
           "a 4-bit dynamic map for m, 16 linear codes without zero for v, block 128, two codes a byte"),
          ("AdamWFp8", "torchao-fp8", "subclass_fp8.py", "19-28", "float8_e4m3fn codes, scale absmax/448 per "
           "block of 256"))),
    Implementation(
        "bitsandbytes AdamW", "bitsandbytes", "torch", "bitsandbytes.optim:AdamW", "torch",
        Reading("torch", amsgrad="ignored"),
        (Citation("bitsandbytes/optim/adamw.py", "9-59", "AdamW takes amsgrad and never passes it on"),
         Citation(_BNB, "474-481", "p *= 1 - lr*wd before the step; lr*sqrt(bc2)/bc1 * m/(sqrt(v) + eps*sqrt(bc2)): "
                  "epsilon corrected"),
         Citation(_BNB, "451-452", "the CPU kernel steps p.float() and g.float()"))),
    Implementation(
        "bitsandbytes AdamW8bit", "bitsandbytes", "torch", "bitsandbytes.optim:AdamW8bit", "torch",
        Reading(None, outside="moments quantized to 8 bits, block by block, in tensors of 4096 elements or more "
                "(min_8bit_size); torch's convention below, amsgrad ignored"),
        (Citation("bitsandbytes/optim/adamw.py", "62-73", "AdamW8bit takes amsgrad and never passes it on"),
         Citation("bitsandbytes/optim/optimizer.py", "502", "tensors of fewer than min_8bit_size (4096) elements "
                  "keep 32-bit state"),
         Citation(_BNB, "474-481", "the 32-bit step: torch's convention"))),
    Implementation(
        "bitsandbytes AdamW8bit (its 8-bit format declared)", "bitsandbytes", "torch", "bitsandbytes.optim:AdamW8bit",
        "torch", Reading(None, outside="torch's AdamW step on its declared format, bitsandbytes-8bit, except that "
                         "its CPU quantizer does not always store the nearest code: the binary search finds a code "
                         "and only it and the next are compared"),
        (Citation("bitsandbytes/optim/optimizer.py", "502-530", "below 4096 elements float32 state; above, uint8 "
                  "state1/state2 with qmap1 'dynamic' (signed), qmap2 'udynamic', absmax per block of 256"),
         Citation("bitsandbytes/backends/cpu/ops.py", "469-577", "dequantize, torch's AdamW step in float32, "
                  "re-quantize"),
         Citation("csrc/common.cpp (bitsandbytes' GitHub source)", "4-34", "quantize_block: the code found by "
                  "BinAlgo<Scalar, float, Direct2>, then only it and the next compared")),
        state=("bitsandbytes-8bit",)),
)


_ALIAS = "optax/_src/alias.py"
_TRANSFORM = "optax/_src/transform.py"
_SUBJECTS = "tools/ecosystem_subjects.py (this repository's)"
_OPTAX_ADAMW = (Citation(_ALIAS, "716-727", "chain(scale_by_adam, add_decayed_weights(wd), "
                         "scale_by_learning_rate(lr)): lr*(m_hat/(sqrt(v_hat)+eps) + wd*theta)"),
                Citation(_TRANSFORM, "294-300", "m_hat, v_hat bias-corrected; m_hat/(sqrt(v_hat + eps_root) + eps)"))

JAX = (
    Implementation("optax.adamw", "optax", "jax", "optax.adamw", "optax", Reading("optax"), _OPTAX_ADAMW),
    Implementation(
        "optax.adamw (inject_hyperparams)", "optax", "jax", "tools.ecosystem_subjects:injected_adamw", "optax",
        Reading("optax"),
        (*_OPTAX_ADAMW, Citation("optax/schedules/_inject.py", "65",
                                 "the same transformation, its hyperparameters kept in the state"))),
    Implementation(
        "optax chain (scale_by_adam, add_decayed_weights, scale_by_learning_rate)", "optax", "jax",
        "tools.ecosystem_subjects:chained_adamw", "optax", Reading("optax"),
        (*_OPTAX_ADAMW, Citation(_SUBJECTS, "19-23", "the chain written out by hand"))),
    Implementation(
        "optax chain with the decay after scale_by_learning_rate", "optax", "jax",
        "tools.ecosystem_subjects:decay_after_scaling_adamw", "optax", Reading("optax", {"decay_scale": "none"}),
        (Citation(_SUBJECTS, "26-30", "add_decayed_weights(-wd) after scale_by_learning_rate: "
                  "the update is -lr*m_hat/(sqrt(v_hat)+eps) - wd*theta, the decay not scaled by lr"),)),
    Implementation(
        "optax.adamw (nesterov=True)", "optax", "jax", "optax:adamw[nesterov=True]", "optax",
        Reading(None, outside="Nesterov momentum: the numerator is b1*m_hat + (1-b1)*g/bc1, not m_hat"),
        (Citation(_ALIAS, "730", "nadamw = adamw(nesterov=True)"),
         Citation(_TRANSFORM, "286-293", "with nesterov, mu_hat = b1*m/bc1(t+1) + (1-b1)*g/bc1(t)"))),
    Implementation(
        "optax.adamw (eps_root=1e-8)", "optax", "jax", "optax:adamw[eps_root=1e-8]", "optax",
        Reading(None, outside="a second epsilon inside the square root: m_hat/(sqrt(v_hat + eps_root) + eps)"),
        (Citation(_TRANSFORM, "300", "m_hat/(sqrt(v_hat + eps_root) + eps)"),)),
)


_KERAS = "keras/src/optimizers"
_KERAS_STEP = (Citation(f"{_KERAS}/base_optimizer.py", "586-594, 952-959", "_apply_weight_decay before the step: "
                        "v -= v*wd*lr"),
               Citation(f"{_KERAS}/adam.py", "104-137", "alpha = lr*sqrt(1-b2^t)/(1-b1^t); m*alpha/(sqrt(v)+eps): "
                        "epsilon hat; AMSGrad the max of raw v"))

KERAS = (
    Implementation(
        "Keras 3 AdamW on TensorFlow", "keras", "tensorflow", "keras.optimizers.AdamW", "keras", Reading("keras"),
        (*_KERAS_STEP, Citation("keras/src/backend/tensorflow/optimizer.py", "89-111",
                                "the TensorFlow backend's decay: assign_sub(v*wd*lr)"))),
    Implementation(
        "Keras 3 AdamW on JAX", "keras", "keras", "keras.optimizers.AdamW", "keras", Reading("keras"),
        (*_KERAS_STEP, Citation("keras/src/backend/jax/optimizer.py", "51-57, 79-85",
                                "the JAX backend keeps the base decay and step")), backend="jax"),
    Implementation(
        "Keras 3 AdamW on torch", "keras", "keras", "keras.optimizers.AdamW", "keras", Reading("keras"),
        (Citation("keras/src/backend/torch/optimizers/torch_optimizer.py", "26, 37-45",
                  "AdamW remapped to torch_adamw.AdamW; decay _foreach_mul_(1 - wd*lr) before the step"),
         Citation("keras/src/backend/torch/optimizers/torch_adam.py", "19-57",
                  "a _foreach form of the same epsilon-hat step")), backend="torch"),
    Implementation(
        "tf-keras AdamW", "tf-keras", "tf_keras", "tf_keras.optimizers.AdamW", "keras", Reading("keras"),
        (Citation("tf_keras/src/optimizers/optimizer.py", "727-731, 739-746", "decay v -= v*wd*lr before the step"),
         Citation("tf_keras/src/optimizers/adamw.py", "178, 202-208",
                  "alpha = lr*sqrt(bc2)/bc1; m*alpha/(sqrt(v)+eps); AMSGrad the max of raw v"))),
)

OTHERS = (
    Implementation(
        "PaddlePaddle AdamW", "paddlepaddle", "paddle", "paddle.optimizer.AdamW", "torch", Reading("torch"),
        (Citation("paddle/optimizer/adamw.py", "60-72", "the docstring's formula scales the decay by the "
                  "bias-corrected lr with epsilon hat: no preset; the kernel does not compute it"),
         Citation("paddle/include/paddle/phi/kernels/funcs/jit/refer/refer.h", "552-589",
                  "the CPU kernel: p -= lr*lr_ratio*coeff*p before the step; eps*sqrt(bc2) outside sqrt(v) with "
                  "step lr*sqrt(bc2)/bc1 (epsilon corrected); AMSGrad the max of raw v"))),
    Implementation(
        "MLX AdamW", "mlx", "mlx", "mlx.optimizers.AdamW", "bert", Reading("bert"),
        (Citation("mlx/optimizers/optimizers.py", "560-564", "the docstring: w -= lr*(m/(sqrt(v)+eps) + wd*w), "
                  "no bias correction"),
         Citation("mlx/optimizers/optimizers.py", "585, 595-603", "bias_correction=False by default; the decay "
                  "parameter*(1 - lr*wd) passed into Adam's step"))),
    Implementation(
        "MLX AdamW (bias_correction=True)", "mlx", "mlx", "mlx.optimizers.AdamW[bias_correction=True]", "torch",
        Reading("torch"),
        (Citation("mlx/optimizers/optimizers.py", "542-547", "with bias_correction, lr/bc1 * m/(sqrt(v)/sqrt(bc2) "
                  "+ eps): epsilon corrected"),
         Citation("mlx/optimizers/optimizers.py", "595-603", "the decay parameter*(1 - lr*wd) before the step"))),
)

_PO = "pytorch_optimizer/optimizer"
_PO_MAXIMIZE = Citation("pytorch_optimizer/base/optimizer.py", "710-713",
                        "maximize_gradient: grad.neg_(), the gradient it was given negated in place")
_FLASH = "pytorch_optimizer:FlashAdamW"

TORCH_MORE = (
    Implementation(
        "pytorch-optimizer FlashAdamW", "pytorch-optimizer", "torch", _FLASH, "torch",
        Reading(None, outside="moments held in 8 bits (int8, uint8) with float16 group scales (quantize=True)"),
        (Citation(f"{_PO}/flash_adamw.py", "33-65, 109-119", "quantize=True (the default): m and v in 8-bit groups "
                  "of 32 with float16 scales"),
         Citation(f"{_PO}/flash_adamw.py", "402-415", "p *= 1 - lr*wd before the step; lr*(m/bc1)/(sqrt(v/bc2) + eps)"))),
    Implementation(
        "pytorch-optimizer FlashAdamW (its flash-adamw format declared)", "pytorch-optimizer", "torch",
        f"{_FLASH}[amsgrad=False,maximize=False]",
        "torch", Reading(None, outside="torch's AdamW step on its declared format, flash-adamw, whose float16 group "
                         "scales overflow where a group's largest |m| or sqrt(v) passes 65504"),
        (Citation(f"{_PO}/flash_adamw.py", "33-95", "groups of 32, scale absmax clamped at 1e-12, codes rounded to "
                  "nearest, the scale stored as float16: scales.to(torch.float16)"),
         Citation(f"{_PO}/flash_adamw.py", "98-101", "exp_avg signed with softsign, exp_avg_sq unsigned of its square "
                  "root"),
         Citation(f"{_PO}/flash_adamw.py", "397-419", "the float32 step from the dequantized state, then store_state")),
        dtypes=("float32", "bfloat16"), state=("flash-adamw",)),
    Implementation(
        "pytorch-optimizer FlashAdamW (quantize=False)", "pytorch-optimizer", "torch", f"{_FLASH}[quantize=False]",
        "torch",
        Reading(None, outside="torch's knobs, but maximize=True negates the gradient it was given in place, which "
                "certify rejects, and amsgrad=True is taken by **kwargs and never read"),
        (Citation(f"{_PO}/flash_adamw.py", "391-393", "maximize_gradient on grad = p.grad.to(float32): p.grad itself "
                  "for float32 parameters"), _PO_MAXIMIZE,
         Citation(f"{_PO}/flash_adamw.py", "190-205, 233", "no amsgrad parameter: **kwargs go into the defaults"))),
    Implementation(
        "pytorch-optimizer FlashAdamW (quantize=False, amsgrad and maximize off)", "pytorch-optimizer", "torch",
        f"{_FLASH}[quantize=False,amsgrad=False,maximize=False]", "torch", Reading("torch"),
        (Citation(f"{_PO}/flash_adamw.py", "348-349, 402-415", "p *= 1 - lr*wd before the step; "
                  "lr*(m/bc1)/(sqrt(v/bc2) + eps): epsilon corrected"),)),
    Implementation(
        "pytorch-optimizer AdamWSN (amsgrad and maximize off)", "pytorch-optimizer", "torch",
        "pytorch_optimizer:AdamWSN[amsgrad=False,maximize=False]", "torch", Reading("hf_legacy"),
        (Citation(f"{_PO}/snsm.py", "179-182", "step size lr*sqrt(bc2)/bc1 over sqrt(v) + eps: epsilon hat"),
         Citation(f"{_PO}/snsm.py", "219-235", "p -= lr*wd*p after the Adam step"), _PO_MAXIMIZE)),
    Implementation(
        "pytorch-optimizer StableAdamW", "pytorch-optimizer", "torch", "pytorch_optimizer:StableAdamW", "torch",
        Reading(None, outside="the lr divided by max(1, RMS(g^2/v_hat)) every step (update clipping)"),
        (Citation(f"{_PO}/adamw.py", "162-163, 190-202", "moments kept bias-corrected; lr / max(1, RMS) scales the "
                  "step and the decay"),
         Citation("pytorch_optimizer/base/optimizer.py", "585-600", "get_stable_adamw_rms: RMS(g^2/v_hat) "
                  "clipped below at 1"))),
    Implementation(
        "heavyball AdamW", "heavyball", "torch", "heavyball:AdamW", "torch",
        Reading(None, outside="divides by max(sqrt(v_hat), eps), not sqrt(v_hat) + eps"),
        (Citation("heavyball/chainable.py", "197-220", "amsgrad and maximize refused: TypeError, unknown keyword "
                  "arguments"),
         Citation("heavyball/utils.py", "340-343", "moments kept bias-corrected (debiased betas)"),
         Citation("heavyball/utils.py", "420-421, 435", "denominator v_hat.sqrt().clamp(min=eps): max(sqrt(v_hat), "
                  "eps)"),
         Citation("heavyball/utils.py", "2445", "p*(1 - wd*lr) - lr*u: decay before, scaled by lr"))),
    Implementation(
        "DeepSpeed DeepSpeedCPUAdam", "deepspeed", "torch", "deepspeed.ops.adam:DeepSpeedCPUAdam", "torch",
        Reading("torch"),
        (Citation("deepspeed/ops/adam/cpu_adam.py", "106-109", "amsgrad=True raises RuntimeError"),
         Citation("deepspeed/ops/csrc/includes/cpu_adam.h", "94-106, 161-205", "the op, built by the machine's "
                  "compiler at first use: p += -lr*wd*p before the step; -lr/bc1 * m/(sqrt(v)/sqrt(bc2) + eps)"))),
)

MINDSPORE = (
    Implementation(
        "MindSpore nn.AdamWeightDecay", "mindspore", "mindspore", "mindspore.nn.AdamWeightDecay", "bert",
        Reading("bert"),
        (Citation("mindspore/nn/optim/adam.py", "259-270", "m/(sqrt(v)+eps) + wd*w, times lr: no bias correction, "
                  "the decay inside the update"),
         Citation("mindspore/nn/optim/adam.py", "986", "defaults: eps 1e-6, weight_decay 0.0"),
         Citation("mindspore/nn/optim/optimizer.py", "267-270", "parameters named beta or gamma are not decayed")),
        environment="mindspore"),
    Implementation(
        "MindSpore experimental.optim.AdamW", "mindspore", "mindspore", "mindspore.experimental.optim.AdamW",
        "torch", Reading("torch"),
        (Citation("mindspore/experimental/optim/adamw.py", "52-58, 67", "p *= 1 - lr*wd before the step"),
         Citation("mindspore/experimental/optim/adamw.py", "71-76", "AMSGrad the max of raw v (its docstring says "
                  "v_hat); sqrt(v)/sqrt(bc2) + eps: epsilon corrected"),
         Citation("mindspore/experimental/optim/adamw.py", "138, 179", "the docstring's weight_decay default 0, "
                  "the code's 1e-2")),
        environment="mindspore"),
)

_BNB_LION = "bitsandbytes/optim/lion.py"
_BNB_CPU = "bitsandbytes/backends/cpu/ops.py"
_PO_BASE = "pytorch_optimizer/base/optimizer.py"
_PO_FOREACH = Citation(_PO_BASE, "503-506", "with foreach=None (the default) the foreach path is taken on the CPU too")
_PO_NEG = ("maximize: torch._foreach_neg_(grads) on the p.grad tensors it was given (base/optimizer.py:537): "
           "negated in place")
_PO_LION = f"{_PO}/lion.py"
_PO_LION_STEP = Citation(_PO_LION, "108-122", "p *= 1 - lr*wd before the step (base/optimizer.py:574-582), "
                         "then p -= lr*sign(lerp(m, g, 1 - b1)); m = lerp(m, g, 1 - b2)")
_PO_LION_LERP = Citation(_PO_LION, "117", "c = torch._foreach_lerp(m, g, weight=1 - b1): the weight, a float32 "
                         "scalar for float32 tensors, rounds 1 - b1, so a b1 below 2^-25 counts as 0")
_PO_RADAM = f"{_PO}/radam.py"

_LION_PYTORCH = "lion_pytorch/lion_pytorch.py"
_LION_PYTORCH_STEP = Citation(_LION_PYTORCH, "17, 21-22, 26", "update_fn: p *= 1 - lr*wd; "
                              "p -= lr*sgn(b1*m + (1-b1)*g), sgn(0) = 0; m = b2*m + (1-b2)*g")

#: Optimizers of rules other than AdamW: Lion (``spec/lion.py``), NAdam (``spec/nadam.py``) and RAdam (``spec/radam.py``).
OTHER_RULES = (
    Implementation(
        "lion-pytorch Lion", "lion-pytorch", "torch", "lion_pytorch:Lion", "paper", Reading("paper"),
        (Citation(_LION_PYTORCH, "30-39", "lr 1e-4, betas (0.9, 0.99), weight_decay 0, decoupled_weight_decay "
                  "False; no maximize"), _LION_PYTORCH_STEP),
        rule="lion"),
    Implementation(
        "lion-pytorch Lion (decoupled_weight_decay)", "lion-pytorch", "torch",
        "lion_pytorch:Lion[decoupled_weight_decay=True]", "paper", Reading("paper", {"decay_scale": "schedule"}),
        (Citation(_LION_PYTORCH, "43, 78-79", "decoupled_weight_decay: wd /= the lr given at construction, so "
                  "the decay is (lr/lr0)*wd"), _LION_PYTORCH_STEP),
        rule="lion"),
    Implementation(
        "bitsandbytes Lion", "bitsandbytes", "torch", "bitsandbytes.optim:Lion", "paper", Reading("paper"),
        (Citation(_BNB_LION, "8-52", "Lion: Optimizer1State('lion'), optim_bits=32; no maximize parameter; betas "
                  "(0.9, 0.99), though the docstring says (0.9, 0.999)"),
         Citation("bitsandbytes/optim/optimizer.py", "714-733", "32-bit state: F.optimizer_update_32bit"),
         Citation(_BNB_CPU, "417-424, 448, 451", "the CPU kernel: p *= 1 - lr*wd before the step; "
                  "p -= lr*sign(b1*m + (1-b1)*g); m = b2*m + (1-b2)*g")),
        rule="lion"),
    Implementation(
        "bitsandbytes Lion8bit", "bitsandbytes", "torch", "bitsandbytes.optim:Lion8bit", "paper",
        Reading(None, outside="the momentum quantized to 8 bits, block by block, in tensors of 4096 elements or "
                "more (min_8bit_size); the paper's convention below"),
        (Citation(_BNB_LION, "55-96", "Lion8bit: Optimizer1State('lion') with 8-bit state"),
         Citation("bitsandbytes/optim/optimizer.py", "674-695", "below min_8bit_size (4096) elements float32 state; "
                  "above, uint8 state1 with the signed dynamic map, absmax per block of 256"),
         Citation(_BNB_CPU, "545-551", "the step in float32 from the dequantized momentum: the 32-bit kernel's")),
        rule="lion"),
    Implementation(
        "pytorch-optimizer Lion", "pytorch-optimizer", "torch", "pytorch_optimizer:Lion", "paper",
        Reading(None, outside="the paper's knobs, but maximize=True negates the gradient it was given in place, "
                "which certify rejects"),
        (Citation(_PO_LION, "28-39", "betas (0.9, 0.99), weight_decouple=True, fixed_decay=False, maximize, "
                  "**kwargs"),
         Citation(_PO_LION, "182-187", "the foreach path where _can_use_foreach"), _PO_FOREACH,
         Citation(_PO_LION, "105-106", _PO_NEG), _PO_LION_STEP),
        rule="lion"),
    Implementation(
        "pytorch-optimizer Lion (maximize off)", "pytorch-optimizer", "torch", "pytorch_optimizer:Lion[maximize=False]",
        "paper", Reading("paper"), (_PO_FOREACH, _PO_LION_STEP, _PO_LION_LERP), rule="lion"),
    Implementation(
        "pytorch-optimizer Lion (fixed_decay, maximize off)", "pytorch-optimizer", "torch",
        "pytorch_optimizer:Lion[fixed_decay=True,maximize=False]", "paper", Reading("paper", {"decay_scale": "none"}),
        (Citation(_PO_LION, "20", "fixed_decay: decoupled weight decay not scaled by the learning rate"),
         Citation(_PO_BASE, "574-575, 582", "with fixed_decay, p *= 1 - wd"), _PO_LION_STEP, _PO_LION_LERP),
        rule="lion"),
    Implementation(
        "pytorch-optimizer NAdam", "pytorch-optimizer", "torch", "pytorch_optimizer:NAdam", "torch", Reading("torch"),
        (Citation(f"{_PO}/__init__.py", "10, 240", "from torch.optim import ... NAdam ...: torch's own NAdam, "
                  "re-exported"),
         Citation("torch/optim/nadam.py", "347, 371-378", "torch's step: mu_t = b1*(1 - 0.5*0.96**(t*psi)); two "
                  "addcdiv_, the gradient's and the momentum's")),
        rule="nadam"),
    Implementation(
        "pytorch-optimizer RAdam", "pytorch-optimizer", "torch", "pytorch_optimizer:RAdam", "torch",
        Reading(None, outside="no step at all (no decay either) while rho_t is below the threshold: "
                "degenerated_to_sgd=False by default, where torch steps lr*m_hat; and maximize=True negates the "
                "gradient it was given in place"),
        (Citation(_PO_RADAM, "29-43", "weight_decouple=True, n_sma_threshold=5, degenerated_to_sgd=False, eps 1e-8"),
         Citation(_PO_BASE, "337-346", "rt of the rectification (times sqrt(1 - b2^t)) where n_sma >= threshold; "
                  "else 1 with degenerated_to_sgd, else -1"),
         Citation(_PO_RADAM, "190-205, 221", "step_size = lr*rt/bc1; an update only where n_sma >= threshold or "
                  "step_size > 0: with rt = -1, none"),
         Citation(_PO_RADAM, "107-108", _PO_NEG), _PO_FOREACH),
        rule="radam"),
    Implementation(
        "pytorch-optimizer RAdam (degenerated_to_sgd, maximize off)", "pytorch-optimizer", "torch",
        "pytorch_optimizer:RAdam[degenerated_to_sgd=True,maximize=False]", "torch",
        Reading("torch", {"weight_decay": "decoupled"}),
        (Citation(_PO_RADAM, "34-35", "weight_decouple=True by default"),
         Citation(_PO_RADAM, "110-118", "p *= 1 - lr*wd before the moments (base/optimizer.py:580-582)"),
         Citation(_PO_RADAM, "125-131", "rectified: p -= lr*rt*sqrt(bc2)/bc1 * m/(sqrt(v) + eps): epsilon raw; "
                  "else p -= lr/bc1 * m"), _PO_FOREACH),
        rule="radam"),
)

IMPLEMENTATIONS: tuple[Implementation, ...] = (*TORCH, *TORCH_MORE, *JAX, *KERAS, *OTHERS, *MINDSPORE, *OTHER_RULES)

#: What the scoreboard lacks, and why: each reason is what the install or import printed beside torch 2.13.0+cpu.
NOT_RUN: tuple[Unrun, ...] = (
    Unrun("timm AdamW variants (timm.optim)", "timm 1.0.31",
          "`import timm.optim` imports timm's package, which imports torchvision: PyPI's torchvision 0.28 fails "
          "beside the CPU torch 2.13 wheel (RuntimeError: operator torchvision::nms does not exist), and without "
          "it the import fails (No module named 'torchvision')"),
    Unrun("Composer DecoupledAdamW", "mosaicml 0.32.1",
          "mosaicml 0.32.1 requires torch<2.7.1 and torchvision<0.22.1: it cannot be installed beside the pinned "
          "torch 2.13"),
    Unrun("MindSpore mint.optim.AdamW", "mindspore 2.10.0",
          "its kernel is Ascend's alone: on the CPU, stepping it fails (The kernel AdamW unregistered)"),
)
