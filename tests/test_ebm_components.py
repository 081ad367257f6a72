"""The ebm plugin's parts against hand computations: energy net, one SGLD step, CD loss, replay buffer."""

from __future__ import annotations

import pytest
import torch
from genframe_ebm.buffer import ReplayBuffer
from genframe_ebm.energy import SwishEnergyNet
from genframe_ebm.sampler import SGLDSampler
from genframe_ebm.trainer import cd_loss
from torch import nn


class LinearScore(nn.Module):
    """score(x) = sum(w * x): its input gradient is exactly w."""

    def __init__(self, weight: torch.Tensor) -> None:
        super().__init__()
        self.weight = nn.Parameter(weight.clone())

    def forward(self, x):
        return (x * self.weight).flatten(1).sum(1)


def test_energy_net_matches_reference_architecture():
    net = SwishEnergyNet()
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size[0], c.stride[0]) for c in convs] == [(16, 5, 2), (32, 3, 2), (64, 3, 2), (64, 3, 2)]
    linears = [m for m in net.modules() if isinstance(m, nn.Linear)]
    assert [(l.in_features, l.out_features) for l in linears] == [(256, 64), (64, 1)]
    x = torch.rand(3, 1, 32, 32) * 2 - 1
    scores = net(x)
    assert scores.shape == (3,)
    assert torch.allclose(net.energy(x), -scores)
    assert all(torch.count_nonzero(m.bias) == 0 for m in convs + linears)  # Keras init: zero biases


def test_one_sgld_step_matches_hand_computation():
    torch.manual_seed(0)
    weight = torch.tensor([0.5, -0.01, 0.02, -0.2]).view(1, 1, 2, 2)
    model = LinearScore(weight)
    x0 = torch.tensor([0.9, -0.99, 0.3, 0.0]).view(1, 1, 2, 2)
    sampler = SGLDSampler(step_size=10.0, noise=0.05, grad_clip=0.03, example_shape=(1, 2, 2))
    out = sampler.sample(model, x0, steps=1, generator=torch.Generator().manual_seed(7)).images

    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(7))
    x = (x0 + 0.05 * noise).clamp(-1, 1)
    grad = weight.clamp(-0.03, 0.03)  # d score / dx = w, clipped
    expected = (x + 10.0 * grad).clamp(-1, 1)
    assert torch.allclose(out, expected, atol=1e-7)
    # the first pixel is pushed past 1 by the clipped gradient and must be clamped
    assert out.flatten()[0] == 1.0
    assert model.weight.requires_grad  # weights unfrozen again after sampling
    assert model.weight.grad is None  # and no weight gradient was accumulated


def test_sgld_chain_and_no_grad_context():
    model = SwishEnergyNet()
    sampler = SGLDSampler(steps=6, example_shape=(1, 32, 32))
    init = sampler.init_state(4, generator=torch.Generator().manual_seed(1))
    assert init.min() >= -1 and init.max() <= 1
    with torch.no_grad():  # generation from user code often runs under no_grad
        out = sampler.sample(model, init, steps=6, keep_every=2)
    assert len(out.chain) == 4  # start + steps 2, 4, 6
    assert torch.equal(out.chain[0], init) and torch.equal(out.chain[-1], out.images)
    assert not torch.equal(out.images, init)
    assert out.images.min() >= -1 and out.images.max() <= 1


def test_cd_loss_matches_hand_computation():
    real = torch.tensor([1.0, 2.0, 3.0])
    fake = torch.tensor([-1.0, 0.5, 0.0])
    parts = cd_loss(real, fake, alpha=0.1)
    cdiv = (-1 + 0.5 + 0) / 3 - (1 + 2 + 3) / 3
    reg = 0.1 * ((1 + 1) + (4 + 0.25) + (9 + 0)) / 3  # mean over pairs of real^2 + fake^2
    assert parts["cdiv"].item() == pytest.approx(cdiv)
    assert parts["reg"].item() == pytest.approx(reg)
    assert parts["loss"].item() == pytest.approx(cdiv + reg)
    assert parts["real"].item() == pytest.approx(2.0) and parts["fake"].item() == pytest.approx(-1 / 6)


def test_buffer_starts_with_one_batch_of_uniform_noise():
    buffer = ReplayBuffer(64, (1, 4, 4), initial=16, generator=torch.Generator().manual_seed(0))
    assert len(buffer) == 16 and buffer.storage.shape == (64, 1, 4, 4)
    stored = buffer.oldest_first()
    assert stored.min() >= -1 and stored.max() <= 1 and stored.std() > 0.4  # uniform on [-1, 1]: std 0.577


def test_buffer_draws_fresh_noise_about_five_percent_of_the_time():
    buffer = ReplayBuffer(256, (1, 2, 2), initial=128, generator=torch.Generator().manual_seed(0))
    buffer.storage.fill_(5.0)  # marks stored samples: fresh noise is never 5
    draws = torch.cat([buffer.draw(128) for _ in range(200)])
    assert draws.shape == (25600, 1, 2, 2)
    fresh_share = (draws.flatten(1)[:, 0] != 5.0).float().mean().item()
    assert 0.04 < fresh_share < 0.06  # Binomial(128, 0.05) per draw, 25,600 slots in all


def test_buffer_samples_with_replacement_from_stored_only():
    buffer = ReplayBuffer(8, (1,), initial=4, fresh_prob=0.0, generator=torch.Generator().manual_seed(0))
    buffer.push(torch.tensor([[10.0], [11.0], [12.0], [13.0]]))
    buffer.storage[:4] = torch.tensor([[20.0], [21.0], [22.0], [23.0]])
    draws = buffer.draw(400).flatten()
    assert set(draws.tolist()) == {10.0, 11.0, 12.0, 13.0, 20.0, 21.0, 22.0, 23.0}
    assert len(draws) == 400


def test_buffer_evicts_oldest_first_beyond_capacity():
    buffer = ReplayBuffer(5, (1,), initial=2, generator=torch.Generator().manual_seed(0))
    buffer.push(torch.tensor([[1.0], [2.0]]))
    buffer.push(torch.tensor([[3.0], [4.0]]))  # 6 pushed into 5 slots: the first noise sample falls out
    assert len(buffer) == 5
    assert buffer.oldest_first()[1:].flatten().tolist() == [1.0, 2.0, 3.0, 4.0]
    buffer.push(torch.tensor([[5.0], [6.0], [7.0]]))
    assert buffer.oldest_first().flatten().tolist() == [3.0, 4.0, 5.0, 6.0, 7.0]
    assert buffer.newest(2).flatten().tolist() == [6.0, 7.0]


def test_buffer_state_round_trip_gives_the_same_future_draws():
    a = ReplayBuffer(16, (1, 2, 2), initial=8, generator=torch.Generator().manual_seed(3))
    for _ in range(3):
        a.push(a.draw(8) + 0.1)
    b = ReplayBuffer(16, (1, 2, 2), initial=8, generator=torch.Generator().manual_seed(99))
    b.load_state_dict(a.state_dict())
    b.generator.set_state(a.generator.get_state())
    assert torch.equal(a.draw(8), b.draw(8))
    smaller = ReplayBuffer(4, (1, 2, 2), initial=1)
    smaller.load_state_dict(a.state_dict())  # another capacity keeps the newest, in order
    assert torch.equal(smaller.oldest_first(), a.newest(4))
