"""Small PyTorch models for the digits demo, and a trainer (imports torch)."""

from __future__ import annotations

import numpy as np

__all__ = ["make_mlp", "make_cnn", "train_torch", "accuracy_torch"]


def make_mlp(seed: int = 0, in_features: int = 64, hidden: tuple[int, int] = (64, 32), classes: int = 10):
    """A two-hidden-layer ReLU MLP: ``(sample, 64) -> (sample, 10)`` logits.

    Layers: ``fc1``, ``act1``, ``fc2``, ``act2``, ``out``.
    """
    import torch  # optional framework: torch
    from torch import nn

    class MLP(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = nn.Linear(in_features, hidden[0])
            self.act1 = nn.ReLU()
            self.fc2 = nn.Linear(hidden[0], hidden[1])
            self.act2 = nn.ReLU()
            self.out = nn.Linear(hidden[1], classes)

        def forward(self, x):
            x = x.reshape(x.shape[0], -1)
            return self.out(self.act2(self.fc2(self.act1(self.fc1(x)))))

    torch.manual_seed(seed)
    return MLP()


def make_cnn(seed: int = 0, classes: int = 10):
    """A small CNN for ``(sample, 1, 8, 8)`` images -> ``(sample, 10)`` logits.

    Layers: ``conv1``, ``act1``, ``conv2``, ``act2``, ``pool``, ``fc``,
    ``act3``, ``out``.
    """
    import torch  # optional framework: torch
    from torch import nn

    class CNN(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
            self.act1 = nn.ReLU()
            self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
            self.act2 = nn.ReLU()
            self.pool = nn.MaxPool2d(2)
            self.fc = nn.Linear(16 * 4 * 4, 32)
            self.act3 = nn.ReLU()
            self.out = nn.Linear(32, classes)

        def forward(self, x):
            x = x.reshape(x.shape[0], 1, 8, 8)
            x = self.pool(self.act2(self.conv2(self.act1(self.conv1(x)))))
            return self.out(self.act3(self.fc(x.flatten(1))))

    torch.manual_seed(seed)
    return CNN()


def train_torch(model, X: np.ndarray, y: np.ndarray, epochs: int = 30, lr: float = 1e-2,
                batch_size: int = 64, seed: int = 0):
    """Train ``model`` in place with Adam and cross-entropy; returns it in eval mode."""
    import torch  # optional framework: torch

    gen = torch.Generator().manual_seed(seed)
    Xt, yt = torch.as_tensor(X), torch.as_tensor(y)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(Xt), generator=gen)
        for start in range(0, len(Xt), batch_size):
            idx = order[start:start + batch_size]
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(Xt[idx]), yt[idx])
            loss.backward()
            opt.step()
    return model.eval()


def accuracy_torch(model, X: np.ndarray, y: np.ndarray) -> float:
    """Fraction of samples whose arg-max logit equals the label."""
    import torch  # optional framework: torch

    with torch.inference_mode():
        pred = model.eval()(torch.as_tensor(X)).argmax(1).numpy()
    return float((pred == y).mean())
