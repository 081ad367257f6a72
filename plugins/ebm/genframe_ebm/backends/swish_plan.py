"""The Swish CNN's input gradient written out by hand, so SGLD needs no autograd.

SGLD wants only d score / dx with the weights frozen. ``autograd.grad`` records a graph every step,
and on the model's NCHW tensors the convs' backward took ~3x their forward's time (oneDNN's slow
layout path). Here the gradient is the chain rule spelled out: forward with
each conv's pre-activation kept, then back through ``silu_backward`` (the same ATen kernel autograd
calls, so the numbers match) and ``conv_transpose2d`` (the conv's input gradient), all in
channels-last layout, which oneDNN runs much faster on CPU. ATen ops only, so it runs on any device;
``tests/test_sampler_fast.py`` checks it against autograd on every device present.

A plan exists only for models whose computation is exactly the SwishEnergyNet pattern (plain
Conv2d/SiLU pairs, Flatten, Linear, SiLU, Linear to one score, no hooks); anything else returns
None and the sampler keeps the autograd backend, which is right for every nn.Module. The plan also
gives the native backend (native.py) the net's shape and its weights in that step's layouts.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from genframe_ebm.backends.native import NativeSpec
from genframe_ebm.energy import SwishEnergyNet

silu_backward = torch.ops.aten.silu_backward.default


def silu_backward_(grad: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """ATen's SiLU backward (as autograd runs it), written into ``grad`` itself."""
    return torch.ops.aten.silu_backward.grad_input(grad, z, grad_input=grad)


def channels_last(x: torch.Tensor) -> torch.Tensor:
    """``x`` in channels-last strides. With one channel NCHW memory already is NHWC, but PyTorch keeps
    the NCHW strides and oneDNN then takes a several times slower path, so restride it (no copy)."""
    _, c, h, w = x.shape
    if c == 1 and x.is_contiguous():
        return x.as_strided(x.shape, (h * w, 1, w, 1))
    return x.contiguous(memory_format=torch.channels_last)


@dataclass
class Weights:
    """The parameters in the layouts the gradient uses. Taken fresh for each ``sample`` call, since
    training changes the weights (in place) every step; the copies are small (~0.3 MB)."""

    convs: list[tuple[torch.Tensor, torch.Tensor]]  # (weight channels-last, bias) per conv
    fc_weight: torch.Tensor  # columns permuted to the channels-last flatten order
    fc_bias: torch.Tensor
    out_weight: torch.Tensor  # (1, hidden)
    native: list[torch.Tensor] | None = None  # the native step's weight list, in its layouts


def has_hooks(model: nn.Module) -> bool:
    """Hooks could change what forward computes; the hand-written gradient would then be wrong."""
    names = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")
    if any(getattr(nn.modules.module, f"_global{name}", None) for name in names):
        return True
    return any(getattr(module, name, None) for module in model.modules() for name in names)


def _plain_conv(module: nn.Module) -> bool:
    return (type(module) is nn.Conv2d and module.groups == 1 and module.dilation == (1, 1)
            and module.padding_mode == "zeros" and module.bias is not None and not isinstance(module.padding, str))


class SwishPlan:
    """Layer list and shapes of one SwishEnergyNet for a given example shape."""

    def __init__(self, convs: list[nn.Conv2d], fc: nn.Linear, out: nn.Linear,
                 sizes: list[tuple[int, int]], final: tuple[int, int, int]) -> None:
        self.convs, self.fc, self.out = convs, fc, out
        self.sizes = sizes  # input (h, w) of each conv
        self.final = final  # (channels, h, w) of the last conv's output
        self.output_padding = []  # conv_transpose2d must give back the conv's input size exactly
        for conv, (h, w), (h2, w2) in zip(convs, sizes, [*sizes[1:], final[1:]]):
            self.output_padding.append(tuple(
                size - ((out_size - 1) * s - 2 * p + k)
                for size, out_size, s, p, k in zip((h, w), (h2, w2), conv.stride, conv.padding, conv.kernel_size)))

    @classmethod
    def for_model(cls, model: nn.Module, example_shape: tuple[int, ...]) -> SwishPlan | None:
        if not isinstance(model, SwishEnergyNet) or type(model).forward is not SwishEnergyNet.forward:
            return None
        modules = list(getattr(model, "net", ()))
        if has_hooks(model) or any(p.dtype != torch.float32 for p in model.parameters()):
            return None
        convs, index = [], 0
        while index + 1 < len(modules) and _plain_conv(modules[index]) and type(modules[index + 1]) is nn.SiLU:
            convs.append(modules[index])
            index += 2
        head = modules[index:]
        if (not convs or len(example_shape) != 3
                or [type(m) for m in head] != [nn.Flatten, nn.Linear, nn.SiLU, nn.Linear]
                or (head[0].start_dim, head[0].end_dim) != (1, -1) or head[3].out_features != 1):
            return None
        channels, h, w = example_shape
        sizes = []
        for conv in convs:
            if conv.in_channels != channels:
                return None
            sizes.append((h, w))
            h, w = ((size + 2 * p - k) // s + 1
                    for size, p, k, s in zip((h, w), conv.padding, conv.kernel_size, conv.stride))
            channels = conv.out_channels
        if head[1].in_features != channels * h * w or min(h, w) < 1:
            return None
        return cls(convs, head[1], head[3], sizes, (channels, h, w))

    def native_spec(self, precision: str = "fp32") -> NativeSpec | None:
        """The net's shape for the native kernels, if they support it (1-channel input, stride 2, ...)."""
        shapes = []
        for conv in self.convs:
            k, s, p = conv.kernel_size, conv.stride, conv.padding
            if k[0] != k[1] or s[0] != s[1] or p[0] != p[1]:
                return None
            shapes.append((conv.in_channels, conv.out_channels, k[0], s[0], p[0]))
        (h, w), hidden = self.sizes[0], self.fc.out_features
        if h != w or not NativeSpec.supported(h, shapes, hidden):
            return None
        return NativeSpec(h, tuple((ci, co, k) for ci, co, k, _, _ in shapes), hidden, precision)

    def weights(self, native: bool = False, precision: str = "fp32") -> Weights:
        with torch.no_grad():
            convs = [(channels_last(c.weight.detach()), c.bias.detach().contiguous()) for c in self.convs]
            c, h, w = self.final
            fc = self.fc.weight.detach()
            fc = fc.view(fc.shape[0], c, h, w).permute(0, 2, 3, 1).reshape(fc.shape[0], -1).contiguous()
            weights = Weights(convs, fc, self.fc.bias.detach(), self.out.weight.detach().reshape(1, -1))
            if native:
                weights.native = self._native_bf16(fc) if precision == "bf16" else self._native_fp32(fc)
        return weights

    def _native_fp32(self, fc: torch.Tensor) -> list[torch.Tensor]:
        """The order and layouts native_src's sgld_step reads."""
        tensors = []
        for conv in self.convs:
            tensors += [conv.weight.detach().permute(2, 3, 1, 0).contiguous(), conv.bias.detach().contiguous()]
        tensors += [fc.t().contiguous(), fc, self.fc.bias.detach().contiguous(),
                    self.out.weight.detach().reshape(-1).contiguous()]
        tensors += [conv.weight.detach().permute(2, 3, 0, 1).contiguous() for conv in self.convs[:0:-1]]
        tensors.append(self.convs[0].weight.detach()[:, 0].contiguous())
        return tensors

    def _native_bf16(self, fc: torch.Tensor) -> list[torch.Tensor]:
        """The same list with the conv weights in bf16, paired as native_bf16_src's dot products read them."""
        bf16 = torch.bfloat16
        first = self.convs[0].weight.detach()[:, 0]  # (co, k, k)
        co1, k1, _ = first.shape
        padded = F.pad(first, (0, 1))  # a zero tap: the first conv pairs taps (v, v + 1)
        tensors = [padded.view(co1, k1, (k1 + 1) // 2, 2).permute(1, 2, 0, 3).to(bf16).contiguous(),
                   self.convs[0].bias.detach().contiguous()]
        for conv in self.convs[1:]:
            w = conv.weight.detach()  # (co, ci, k, k) -> [k][k][ci / 2][co][2]
            co, ci, k, _ = w.shape
            tensors += [w.view(co, ci // 2, 2, k, k).permute(3, 4, 1, 0, 2).to(bf16).contiguous(),
                        conv.bias.detach().contiguous()]
        tensors += [fc.t().contiguous(), fc, self.fc.bias.detach().contiguous(),
                    self.out.weight.detach().reshape(-1).contiguous()]
        for conv in self.convs[:0:-1]:  # transposed convs: [k][k][co / 2][ci][2]
            w = conv.weight.detach()
            co, ci, k, _ = w.shape
            tensors.append(w.view(co // 2, 2, ci, k, k).permute(3, 4, 0, 2, 1).to(bf16).contiguous())
        tensors.append(first.view(co1 // 2, 2, k1, k1).permute(0, 2, 3, 1).to(bf16).contiguous())  # [co/2][k][k][2]
        return tensors

    def input_grad(self, weights: Weights, x: torch.Tensor, scratch: dict | None = None) -> torch.Tensor:
        """d score(x).sum() / dx for a batch x (N, C, H, W); any device."""
        return self.grad_from(weights, channels_last(x), 0, scratch=scratch)

    def grad_from(self, weights: Weights, a: torch.Tensor, first: int, scratch: dict | None = None) -> torch.Tensor:
        """d score / d a, where ``a`` is the input of conv ``first`` (channels-last); the result is
        channels-last.

        ``scratch`` (a dict kept by the caller across steps) holds the activations' buffers, and SiLU's
        backward runs in place: fewer fresh allocations per step. Fresh MB-sized tensors each step
        cost page faults whenever the allocator has handed the memory back to the OS meanwhile."""
        pre = []  # each conv's pre-activation z: silu_backward needs it
        for weight, bias in weights.convs[first:]:
            conv = self.convs[first + len(pre)]
            z = F.conv2d(a, weight, bias, conv.stride, conv.padding)
            pre.append(z)
            if scratch is None:
                a = F.silu(z)
            else:
                out = scratch.get(len(pre))
                if out is None or out.shape != z.shape or out.stride() != z.stride():
                    out = scratch[len(pre)] = torch.empty_like(z)
                a = torch.ops.aten.silu.out(z, out=out)
        n = a.shape[0]
        # Head: score = out(silu(fc(flatten(a)))); its gradient w.r.t. the last activation.
        hidden = torch.addmm(weights.fc_bias, a.permute(0, 2, 3, 1).reshape(n, -1), weights.fc_weight.t())
        g = silu_backward(weights.out_weight.expand(n, -1), hidden)
        c, h, w = self.final
        g = torch.mm(g, weights.fc_weight).view(n, h, w, c).permute(0, 3, 1, 2)
        for offset in reversed(range(len(pre))):
            index = first + offset
            conv = self.convs[index]
            g = silu_backward_(g, pre[offset])  # g is always a fresh temporary here: overwrite it
            g = F.conv_transpose2d(g, weights.convs[index][0], None, conv.stride, conv.padding,
                                   self.output_padding[index])
        return g
