#!/usr/bin/python3
"""PyTorch side of examples/vae.c: the same variational auto-encoder,
hyperparameters and data, for a side-by-side test loss.

    /usr/bin/python3 benches/torch_vae.py [--epochs 10] [--seed 1] [--threads 1]

Model (Kingma & Welling 2014, the PyTorch examples' VAE):
  encoder  x (784) -> 400 relu -> mu (20), logvar (20)   (two heads on the 400)
  sample   z = mu + exp(logvar / 2) * eps,  eps ~ N(0, 1)
  decoder  z (20) -> 400 relu -> 784 logits
  loss per example = sum over the 784 pixels of BCE-with-logits(logits, x)
                     + KL = -1/2 * sum(1 + logvar - mu^2 - exp(logvar))
  the batch's loss is the mean over its examples.
Adam (lr 1e-3, torch's defaults), batch 128, shuffled each epoch;
Fashion-MNIST (Debian's dataset-fashion-mnist) scaled to [0, 1].
Initialisation: torch's default for nn.Linear, U(-1/sqrt(fan_in),
1/sqrt(fan_in)) for weights and biases (the C example does the same).

Prints one line per epoch (mean training loss) and then
  test: loss=<negative ELBO per example, mean over the 10,000 test images>
with eps drawn from a fixed seed.
"""

import argparse
import time

from torch_common import load_images


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    train = load_images(torch, "train")
    test = load_images(torch, "t10k")

    class VAE(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = torch.nn.Linear(784, 400)
            self.mu = torch.nn.Linear(400, 20)
            self.logvar = torch.nn.Linear(400, 20)
            self.fc3 = torch.nn.Linear(20, 400)
            self.fc4 = torch.nn.Linear(400, 784)

        def forward(self, x, eps):
            h = F.relu(self.fc1(x))
            mu, logvar = self.mu(h), self.logvar(h)
            z = mu + torch.exp(0.5 * logvar) * eps
            logits = self.fc4(F.relu(self.fc3(z)))
            bce = F.binary_cross_entropy_with_logits(logits, x, reduction="sum")
            kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
            return (bce + kl) / x.shape[0]

    model = VAE()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    n = train.shape[0]
    for e in range(1, a.epochs + 1):
        t0 = time.time()
        perm = torch.randperm(n)
        total = 0.0
        for s in range(0, n, 128):
            x = train[perm[s : s + 128]]
            loss = model(x, torch.randn(x.shape[0], 20))
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * x.shape[0]
        print(f"epoch {e}/{a.epochs} loss={total / n:.4f} time={time.time() - t0:.2f}s", flush=True)
    g = torch.Generator().manual_seed(12345)
    with torch.no_grad():
        total = 0.0
        for s in range(0, test.shape[0], 1000):
            x = test[s : s + 1000]
            total += model(x, torch.randn(x.shape[0], 20, generator=g)).item() * x.shape[0]
    print(f"test: loss={total / test.shape[0]:.4f}")


if __name__ == "__main__":
    main()
