"""Optimizers (SGD, Adam, AdamW) and learning-rate schedules (poly, step), PyTorch semantics.

An optimizer holds references to the parameters and, on ``step()``, moves each one
against its gradient. Updates happen in place on ``p.data`` (no graph is recorded).

SGD with momentum, as PyTorch writes it (dampening 0)::

    g = grad + weight_decay * p
    buf = momentum * buf + g            (buf = g on the first step)
    p  -= lr * (g + momentum * buf)     if nesterov
    p  -= lr * buf                      otherwise

Adam keeps running means of the gradient (m) and its square (v), bias-corrected::

    m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
    p -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)

AdamW differs only in where weight decay goes: ``p -= lr * wd * p`` directly, instead
of adding ``wd * p`` to the gradient.
"""
import math

import numpy as np

from . import backend
from .kernels.threads import num_threads, side_by_side
from .tensor import Tensor


#: Parameters of fewer elements than this (all together) are updated on one thread.
PARALLEL_MIN_ELEMENTS = 1 << 18


def _shares(work, threads):
    """``work`` items ``(param, grad, ...)`` dealt into at most ``threads`` shares of about
    equal element counts (largest first, each to the lightest share); one share when the
    parameters are few, small or on the GPU."""
    sizes = [item[1].size for item in work]
    on_cpu = all(isinstance(item[1], np.ndarray) for item in work)
    if threads < 2 or sum(sizes) < PARALLEL_MIN_ELEMENTS or not on_cpu:
        return [work] if work else []
    shares, loads = [[] for _ in range(threads)], [0] * threads
    for i in sorted(range(len(work)), key=lambda i: -sizes[i]):
        lightest = loads.index(min(loads))
        shares[lightest].append(work[i])
        loads[lightest] += sizes[i]
    return [share for share in shares if share]


class Optimizer:
    """Base class: ``param_groups`` (a list of dicts with 'params' and hyper-parameters) and state."""

    def __init__(self, params, defaults):
        params = list(params)
        if not params:
            raise ValueError(f"{type(self).__name__}: got an empty parameter list")
        if isinstance(params[0], dict):
            groups = [dict(g) for g in params]
        else:
            groups = [{"params": params}]
        self.param_groups = []
        for g in groups:
            g["params"] = list(g["params"])
            for i, p in enumerate(g["params"]):
                if not isinstance(p, Tensor):
                    raise TypeError(f"{type(self).__name__}: parameter {i} is a {type(p).__name__}, not a Tensor")
            for k, v in defaults.items():
                g.setdefault(k, v)
            g.setdefault("initial_lr", g["lr"])
            self.param_groups.append(g)
        self.state = {}          # id(param) -> dict of arrays

    def zero_grad(self):
        """Forget all gradients (set ``.grad`` to None) before the next backward."""
        for g in self.param_groups:
            for p in g["params"]:
                p.grad = None

    def step(self):
        """Update every parameter that has a gradient.

        Each parameter's update is independent of the others, so on the CPU, with enough
        elements (:data:`PARALLEL_MIN_ELEMENTS`), the parameters are dealt out to the
        threads in shares of about equal size: the result does not depend on the count.
        """
        work = [(p, p.grad.data, group, self.state.setdefault(id(p), {}))
                for group in self.param_groups for p in group["params"] if p.grad is not None]
        shares = _shares(work, num_threads())
        if len(shares) < 2:
            for item in work:
                self._update(*item)
            return
        side_by_side([lambda share=share: [self._update(*item) for item in share] for share in shares])

    def _update(self, p, grad, group, state):
        raise NotImplementedError

    # checkpoints: state by parameter position, as arrays
    def state_dict(self):
        """``{'state': {'i.name': array}, 'groups': [...hyper-parameters...]}`` with host arrays."""
        flat, index = {}, 0
        for g in self.param_groups:
            for p in g["params"]:
                for name, value in self.state.get(id(p), {}).items():
                    # a copy: the optimizer goes on updating its own arrays in place
                    flat[f"{index}.{name}"] = np.array(backend.to_numpy(value)) if hasattr(value, "shape") else value
                index += 1
        groups = [{k: v for k, v in g.items() if k != "params"} for g in self.param_groups]
        return {"state": flat, "groups": groups}

    def load_state_dict(self, state_dict):
        params = [p for g in self.param_groups for p in g["params"]]
        for g, saved in zip(self.param_groups, state_dict["groups"]):
            g.update(saved)
        self.state = {}
        for key, value in state_dict["state"].items():
            i, name = key.split(".", 1)
            p = params[int(i)]
            if hasattr(value, "shape") and value.shape != ():
                value = backend.to_device(value, p.device).astype(p.dtype, copy=True)
            elif hasattr(value, "shape"):
                value = value.item()
            self.state.setdefault(id(p), {})[name] = value


class SGD(Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum and weight decay."""

    def __init__(self, params, lr=0.01, momentum=0.0, weight_decay=0.0, nesterov=False):
        if lr < 0 or momentum < 0 or weight_decay < 0:
            raise ValueError(f"SGD: lr, momentum and weight_decay must be >= 0, got {lr}, {momentum}, {weight_decay}")
        if nesterov and momentum <= 0:
            raise ValueError("SGD: nesterov momentum needs momentum > 0")
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov))

    def _update(self, p, grad, group, state):
        if group["weight_decay"]:
            grad = grad + group["weight_decay"] * p.data
        if group["momentum"]:
            buf = state.get("momentum_buffer")
            buf = grad.copy() if buf is None else group["momentum"] * buf + grad
            state["momentum_buffer"] = buf
            grad = grad + group["momentum"] * buf if group["nesterov"] else buf
        p.data = (p.data - group["lr"] * grad).astype(p.dtype, copy=False)


class Adam(Optimizer):
    """Adam (Kingma & Ba); ``weight_decay`` adds ``wd * p`` to the gradient (L2), as torch.optim.Adam."""

    decoupled = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        if lr < 0 or eps < 0 or not (0 <= betas[0] < 1 and 0 <= betas[1] < 1):
            raise ValueError(f"{type(self).__name__}: invalid lr={lr}, betas={betas} or eps={eps}")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay))

    def _update(self, p, grad, group, state):
        b1, b2 = group["betas"]
        xp = backend.array_module(p.data)
        data = p.data
        if group["weight_decay"]:
            if self.decoupled:
                data = data * (1 - group["lr"] * group["weight_decay"])
            else:
                grad = grad + group["weight_decay"] * data
        if "step" not in state:
            state["step"] = 0
            state["exp_avg"] = xp.zeros_like(data)
            state["exp_avg_sq"] = xp.zeros_like(data)
        state["step"] += 1
        t = state["step"]
        m, v = state["exp_avg"], state["exp_avg_sq"]    # updated in place: no new arrays per step
        m *= b1
        m += (1 - b1) * grad
        v *= b2
        v += (1 - b2) * grad * grad
        step_size = group["lr"] / (1 - b1 ** t)
        denom = xp.sqrt(v)
        denom /= math.sqrt(1 - b2 ** t)
        denom += group["eps"]
        update = step_size * m
        update /= denom
        p.data = (data - update).astype(p.dtype, copy=False)


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter); default weight_decay 0.01."""

    decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01):
        super().__init__(params, lr, betas, eps, weight_decay)


class LRScheduler:
    """Base of schedules with PyTorch's step semantics: the constructor sets epoch 0's rate,
    and each ``step()`` (called after ``optimizer.step()``) moves to the next one."""

    def __init__(self, optimizer):
        self.optimizer = optimizer
        self.base_lrs = [g["initial_lr"] for g in optimizer.param_groups]
        self.last_epoch = 0
        self._apply()

    def get_lr(self):
        raise NotImplementedError

    def _apply(self):
        for g, lr in zip(self.optimizer.param_groups, self.get_lr()):
            g["lr"] = lr

    def step(self):
        self.last_epoch += 1
        self._apply()

    def get_last_lr(self):
        return [g["lr"] for g in self.optimizer.param_groups]

    def state_dict(self):
        return {"last_epoch": self.last_epoch, "base_lrs": list(self.base_lrs)}

    def load_state_dict(self, state):
        self.last_epoch = int(state["last_epoch"])
        self.base_lrs = [float(v) for v in state["base_lrs"]]
        self._apply()


class PolyLR(LRScheduler):
    """The segmentation standard: ``lr = base_lr * (1 - t / total_iters) ** power`` (power 0.9),
    ``min_lr`` from ``total_iters`` on. Same as ``torch.optim.lr_scheduler.PolynomialLR``
    (when ``min_lr`` is 0)."""

    def __init__(self, optimizer, total_iters, power=0.9, min_lr=0.0):
        if total_iters <= 0:
            raise ValueError(f"PolyLR: total_iters must be positive, got {total_iters}")
        self.total_iters, self.power, self.min_lr = total_iters, power, min_lr
        super().__init__(optimizer)

    def get_lr(self):
        t = min(self.last_epoch, self.total_iters)
        factor = (1 - t / self.total_iters) ** self.power
        return [max(self.min_lr, base * factor) for base in self.base_lrs]


class StepLR(LRScheduler):
    """Multiply the rate by ``gamma`` every ``step_size`` steps."""

    def __init__(self, optimizer, step_size, gamma=0.1):
        self.step_size, self.gamma = step_size, gamma
        super().__init__(optimizer)

    def get_lr(self):
        return [base * self.gamma ** (self.last_epoch // self.step_size) for base in self.base_lrs]
