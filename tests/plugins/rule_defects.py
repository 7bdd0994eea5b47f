"""torch's own SGD, Adagrad, RMSprop, Adamax, NAdam, RAdam, Adadelta and Rprop, and a Lion in torch, each with one hidden
defect that its own preset must reject.

================================  ==================================================================
subject                           the defect
================================  ==================================================================
``SGDDampedFirstStep``            the first momentum buffer is :math:`(1-\\tau)g_1`, not :math:`g_1`
                                  (the buffer starts at zero): visible only with dampening
``AdagradZeroStart``              the sum starts at 0 whatever ``initial_accumulator_value`` says
``RMSpropSwappedAlpha``           :math:`v_t = (1-\\alpha)v_{t-1} + \\alpha g_t^2`: α and 1−α swapped
``AdamaxEpsilonAtDivision``       :math:`u_t = \\max(\\beta_2 u_{t-1}, |g_t|)`, divided by as :math:`u_t+\\epsilon`:
                                  ε in Keras' place, not inside the maximum
``NAdamWithoutSchedule``          :math:`\\mu_t = \\beta_1` at every step, whatever ``momentum_decay`` says
``RAdamThresholdFour``            the adaptive step from :math:`\\rho_t > 4`, not 5: at β2 = 0.999, one step early
``AdadeltaSwappedRho``            :math:`v_t = (1-\\rho)v_{t-1} + \\rho g_t^2` (and :math:`u_t` so): ρ and 1−ρ swapped
``RpropKeepsGradient``            the gradient is not zeroed after a sign change: the step goes on
                                  by :math:`-\\mathrm{sign}(g_t)\\Delta_t`, and the next step compares with it
``LionSwappedBetas``              β1 and β2 swapped, in the sign's argument and in the momentum
``LionSignOfZeroIsOne``           :math:`\\mathrm{sign}(0) = 1`, where every library's is 0
``LionFlipsNearZero``             the wrong sign where :math:`|c_t|` is below half of
                                  :math:`\\beta_1|m_{t-1}| + (1-\\beta_1)|g_t|`: far outside rounding in bfloat16 too
================================  ==================================================================

:class:`Lion` is the correct base of the Lion defects, as lion-pytorch 0.2.5 computes it
(``lion_pytorch/lion_pytorch.py:14-26``); torch has no Lion.
"""

from __future__ import annotations

import contextlib

import torch


class SGDDampedFirstStep(torch.optim.SGD):
    """torch's SGD whose momentum buffer exists (as zeros) before the first step, so it is damped."""

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None and group["momentum"] != 0 and "momentum_buffer" not in self.state[p]:
                    self.state[p]["momentum_buffer"] = torch.zeros_like(p)
        return super().step(closure)


class AdagradZeroStart(torch.optim.Adagrad):
    """torch's Adagrad with every sum reset to 0 after construction."""

    def __init__(self, params, *args, **kwargs) -> None:
        super().__init__(params, *args, **kwargs)
        for state in self.state.values():
            state["sum"].zero_()


class RMSpropSwappedAlpha(torch.optim.RMSprop):
    """torch's RMSprop stepping with ``alpha`` replaced by ``1 - alpha``."""

    @torch.no_grad()
    def step(self, closure=None):
        with contextlib.ExitStack() as restore:
            for group in self.param_groups:
                restore.callback(group.__setitem__, "alpha", group["alpha"])
                group["alpha"] = 1 - group["alpha"]
            return super().step(closure)


class AdamaxEpsilonAtDivision(torch.optim.Adamax):
    """torch's Adamax (L2 decay, bias-corrected first moment) with ε added to the norm at the division."""

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state.update(step=torch.tensor(0.0), exp_avg=torch.zeros_like(p), exp_inf=torch.zeros_like(p))
                state["step"] += 1
                grad = -p.grad if group["maximize"] else p.grad
                grad = grad.add(p, alpha=group["weight_decay"])
                state["exp_avg"].lerp_(grad, 1 - beta1)
                torch.maximum(state["exp_inf"].mul_(beta2), grad.abs(), out=state["exp_inf"])
                clr = group["lr"] / (1 - beta1 ** state["step"].item())
                p.addcdiv_(state["exp_avg"], state["exp_inf"] + group["eps"], value=-clr)


class NAdamWithoutSchedule(torch.optim.NAdam):
    """torch's NAdam stepping with ``momentum_decay`` 1e4, so that :math:`0.96^{t\\psi}` is 0 and
    :math:`\\mu_t = \\beta_1` at every step: Nesterov's Adam without Dozat's schedule."""

    @torch.no_grad()
    def step(self, closure=None):
        with contextlib.ExitStack() as restore:
            for group in self.param_groups:
                restore.callback(group.__setitem__, "momentum_decay", group["momentum_decay"])
                group["momentum_decay"] = 1e4
            return super().step(closure)


class RAdamThresholdFour(torch.optim.RAdam):
    """torch's RAdam (L2 decay, ε on the raw root) that takes its adaptive step once :math:`\\rho_t > 4`."""

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state.update(step=torch.tensor(0.0), exp_avg=torch.zeros_like(p), exp_avg_sq=torch.zeros_like(p))
                state["step"] += 1
                t = state["step"].item()
                grad = -p.grad if group["maximize"] else p.grad
                grad = grad.add(p, alpha=group["weight_decay"])
                state["exp_avg"].lerp_(grad, 1 - beta1)
                state["exp_avg_sq"].mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                m_hat = state["exp_avg"] / (1 - beta1**t)
                rho_inf = 2 / (1 - beta2) - 1
                rho_t = rho_inf - 2 * t * beta2**t / (1 - beta2**t)
                if rho_t > 4.0:
                    rect = ((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t)) ** 0.5
                    adaptive = (1 - beta2**t) ** 0.5 / state["exp_avg_sq"].sqrt().add_(group["eps"])
                    p.add_(m_hat * group["lr"] * adaptive * rect, alpha=-1.0)
                else:
                    p.add_(m_hat * group["lr"], alpha=-1.0)


class AdadeltaSwappedRho(torch.optim.Adadelta):
    """torch's Adadelta stepping with ``rho`` replaced by ``1 - rho``."""

    @torch.no_grad()
    def step(self, closure=None):
        with contextlib.ExitStack() as restore:
            for group in self.param_groups:
                restore.callback(group.__setitem__, "rho", group["rho"])
                group["rho"] = 1 - group["rho"]
            return super().step(closure)


class Lion(torch.optim.Optimizer):
    """Lion as lion-pytorch 0.2.5 steps it: decay, then the sign of :math:`\\beta_1 m + (1-\\beta_1)g`, then the
    momentum with :math:`\\beta_2`; :meth:`betas` and :meth:`direction` are where the defects below differ."""

    def __init__(self, params, lr=1e-4, betas=(0.9, 0.99), weight_decay=0.0):
        super().__init__(params, {"lr": lr, "betas": betas, "weight_decay": weight_decay})

    def betas(self, group):
        return group["betas"]

    def direction(self, c, m, grad, beta1):
        return c.sign()

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            beta1, beta2 = self.betas(group)
            for p in group["params"]:
                if p.grad is None:
                    continue
                m = self.state[p].setdefault("exp_avg", torch.zeros_like(p))
                p.mul_(1 - group["lr"] * group["weight_decay"])
                c = m.mul(beta1).add(p.grad, alpha=1 - beta1)
                p.add_(self.direction(c, m, p.grad, beta1), alpha=-group["lr"])
                m.mul_(beta2).add_(p.grad, alpha=1 - beta2)


class LionSwappedBetas(Lion):
    def betas(self, group):
        beta1, beta2 = group["betas"]
        return beta2, beta1


class LionSignOfZeroIsOne(Lion):
    def direction(self, c, m, grad, beta1):
        return torch.where(c >= 0, 1.0, -1.0).to(c.dtype)


class LionFlipsNearZero(Lion):
    def direction(self, c, m, grad, beta1):
        return torch.where(c.abs() < 0.5 * (beta1 * m.abs() + (1 - beta1) * grad.abs()), -c.sign(), c.sign())


class RpropKeepsGradient(torch.optim.Rprop):
    """torch's Rprop (``torch/optim/rprop.py`` ``_single_tensor_rprop``) without ``grad[sign.eq(etaminus)] = 0``."""

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            eta_minus, eta_plus = group["etas"]
            low, high = group["step_sizes"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:  # torch's own keys, so that torch's load_state_dict restores it
                    state["step"] = torch.tensor(0.0)
                    state["prev"] = torch.zeros_like(p)
                    state["step_size"] = torch.full_like(p, group["lr"])
                state["step"] += 1
                g = -p.grad if group["maximize"] else p.grad
                sign = g.mul(state["prev"]).sign()
                factor = torch.where(sign > 0, eta_plus, torch.where(sign < 0, eta_minus, 1.0)).to(p.dtype)
                state["step_size"].mul_(factor).clamp_(low, high)
                p.addcmul_(g.sign(), state["step_size"], value=-1)
                state["prev"].copy_(g)
