"""Where a step runs (components/train/runtime.py): training.compile resolved per device and world size, and the
fused optimizer that matches the per-parameter one. Issue 31, item 5."""
import pytest
import torch

from govtrain.components.train import runtime
from govtrain.components.train.runtime import Objective, compile_mode, optimizer_for
from govtrain.model.task import Task


@pytest.mark.parametrize(("setting", "device", "world", "mode"), [
    ("auto", "cpu", 1, None), ("auto", "cpu", 2, None),  # slower compiled on the CPU host: eager
    ("auto", "cuda", 1, "reduce-overhead"), ("auto", "cuda", 4, "default"),  # CUDA graphs only without DDP
    ("on", "cpu", 2, "default"), ("on", "cuda", 1, "reduce-overhead"),
    ("off", "cuda", 1, None), ("off", "cpu", 1, None),
])
def test_compile_setting_resolves_on_the_device(setting, device, world, mode, monkeypatch):
    monkeypatch.setattr(runtime, "compiler_found", lambda: True)
    assert compile_mode(setting, torch.device(device), world)[0] == mode


def test_auto_stays_eager_on_a_gpu_host_without_a_c_compiler(monkeypatch):
    """Triton builds its launcher with a C compiler at run time; a slim image has none."""
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.delenv("CC", raising=False)
    mode, why = compile_mode("auto", torch.device("cuda"), 1)
    assert mode is None and "C compiler" in why
    assert compile_mode("on", torch.device("cuda"), 1)[0] == "reduce-overhead"  # a person's "on" stands


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(5, 2)

    def forward(self, x_num, x_cat):
        return self.linear(x_num)


def test_the_fused_optimizer_steps_as_the_loop_does():
    weights = []
    for fused in (True, False):
        torch.manual_seed(0)
        net = Net()
        optimizer = optimizer_for(net, 1e-2, 1e-4) if fused else torch.optim.AdamW(net.parameters(), lr=1e-2,
                                                                            weight_decay=1e-4)
        assert optimizer.defaults["fused"] is (True if fused else None)
        task = Task(kind="binary", target="y", classes=["a", "b"])
        for _ in range(20):
            optimizer.zero_grad()
            Objective(net, task)(torch.randn(16, 5), torch.zeros(16, 0, dtype=torch.long),
                                 torch.randint(0, 2, (16,))).backward()
            optimizer.step()
        weights.append(torch.cat([p.detach().flatten() for p in net.parameters()]))
    # the same update, rounded differently
    assert 0 < float((weights[0] - weights[1]).abs().max()) < 1e-5
