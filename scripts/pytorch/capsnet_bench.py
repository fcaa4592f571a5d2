#!/usr/bin/env python3
"""Independent plain-PyTorch CapsNet benchmark (CPU), written from sparsecaps DESIGN.md.

Model (DESIGN.md "The model"):
  conv1  : Conv2d(in -> C1, 9x9, s1, bias) + ReLU          [B, C1, 20, 20]
  primary: Conv2d(C1 -> T*D, 9x9, s2, bias)                [B, T*D, 6, 6]
           -> [B, T, D, G, G] -> [B, T, G, G, D] -> [B, N=T*G*G, D] (i = t*G*G + y*G + x), squash
  digit  : W [N, J, E, D] ~ N(0, 0.1), beta [J, E] = 0.1; u_hat[b,i,j] = W[i,j] @ u[b,i]
  routing: R iterations; only the last uses the non-detached u_hat; beta is never detached
  loss   : margin (0.9 / 0.1 / 0.5) + 0.0005 * sum_pixels (x - x_hat)^2, both mean over batch
  decoder: masked v (target class when training, longest capsule at inference)
           -> Linear h1 ReLU -> Linear h2 ReLU -> Linear H*W*in sigmoid
  optim  : Adam lr 1e-3

Prints exactly one JSON line.
"""
import argparse
import json
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

# "paper" is given by DESIGN.md; "small" is sparsecaps' `small` preset (src/model/config.rs);
# "tiny" is the fixture config (shared/fixtures/capsnet-reference/reference.json);
# "resnet-caps" is sparsecaps' CapsNet head on a ResNet-20 backbone (src/model/backbone*.rs):
# conv1 1x1 to 128 on the backbone's output, primary capsules 3x3 with stride 1, no decoder.
PRESETS = {
    "paper": dict(c1=256, types=32, decoder_hidden=(512, 1024)),
    "small": dict(c1=128, types=16, decoder_hidden=(256, 512)),
    "tiny": dict(c1=16, types=4, decoder_hidden=(32, 64)),
    "resnet-caps": dict(c1=128, types=32, decoder_hidden=(), backbone="resnet20",
                        k1=1, k2=3, s2=1, decoder=False),
}


class ConvBn(nn.Module):
    """A convolution without bias (padding k // 2), then BatchNorm."""

    def __init__(self, cin, cout, k, stride):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x):
        return self.bn(self.conv(x))


class BasicBlock(nn.Module):
    """Two 3x3 ConvBn and a shortcut (a 1x1 ConvBn where the shape changes)."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.a = ConvBn(cin, cout, 3, stride)
        self.b = ConvBn(cout, cout, 3, 1)
        self.shortcut = ConvBn(cin, cout, 1, stride) if (cin != cout or stride != 1) else None

    def forward(self, x):
        y = self.b(F.relu(self.a(x)))
        return F.relu(y + (x if self.shortcut is None else self.shortcut(x)))


def resnet20(in_ch):
    """A 3x3 stem to 16 channels, then stages 16/32/64 (strides 1/2/2) of 3 basic blocks."""
    layers, cin = [ConvBn(in_ch, 16, 3, 1), nn.ReLU()], 16
    for width, stride in ((16, 1), (32, 2), (64, 2)):
        for i in range(3):
            layers.append(BasicBlock(cin, width, stride if i == 0 else 1))
            cin = width
    return nn.Sequential(*layers), cin


def squash(s, dim=-1):
    sq = (s * s).sum(dim=dim, keepdim=True)
    return (sq / (1.0 + sq)) * s / torch.sqrt(sq + 1e-6)


class CapsNet(nn.Module):
    def __init__(self, c1=256, types=32, decoder_hidden=(512, 1024), in_ch=1, hw=28,
                 k1=9, k2=9, s2=2, pdim=8, classes=10, edim=16, routing=3, decoder=True,
                 backbone=None):
        super().__init__()
        self.T, self.D, self.J, self.E, self.R = types, pdim, classes, edim, routing
        self.in_ch, self.hw = in_ch, hw
        self.backbone, side, feat = None, hw, in_ch
        if backbone == "resnet20":
            self.backbone, feat = resnet20(in_ch)
            side = (hw + 3) // 4  # two stride-2 stages, padded
        self.conv1 = nn.Conv2d(feat, c1, k1, stride=1, bias=True)
        self.primary = nn.Conv2d(c1, types * pdim, k2, stride=s2, bias=True)
        g1 = side - k1 + 1
        self.G = (g1 - k2) // s2 + 1
        self.N = types * self.G * self.G
        self.W = nn.Parameter(torch.randn(self.N, classes, edim, pdim) * 0.1)
        self.beta = nn.Parameter(torch.full((classes, edim), 0.1))
        self.use_decoder = decoder
        if decoder:
            h1, h2 = decoder_hidden
            self.fc1 = nn.Linear(classes * edim, h1)
            self.fc2 = nn.Linear(h1, h2)
            self.fc3 = nn.Linear(h2, hw * hw * in_ch)

    def primary_caps(self, x):
        B = x.shape[0]
        if self.backbone is not None:
            x = self.backbone(x)
        h = F.relu(self.conv1(x))
        p = self.primary(h)                                   # [B, T*D, G, G]
        p = p.view(B, self.T, self.D, self.G, self.G)        # channel t*D + d
        p = p.permute(0, 1, 3, 4, 2).reshape(B, self.N, self.D)  # i = t*G*G + y*G + x
        return squash(p), h

    def votes(self, u):
        # u_hat[b,i,j,e] = sum_d W[i,j,e,d] u[b,i,d]  -> [B, N, J, E]
        # as a batched matmul over i: [N, J*E, D] @ [N, D, B] -> [N, J*E, B]
        N, J, E, D = self.W.shape
        B = u.shape[0]
        out = torch.bmm(self.W.reshape(N, J * E, D), u.permute(1, 2, 0))
        return out.permute(2, 0, 1).reshape(B, N, J, E)

    def route(self, u_hat, keep_coupling=False):
        B, N, J, E = u_hat.shape
        u_det = u_hat.detach()
        b = u_hat.new_zeros(B, N, J)
        couplings = []
        v = None
        for r in range(self.R):
            c = torch.softmax(b, dim=-1)                     # [B, N, J]
            if keep_coupling:
                couplings.append(c)
            last = r == self.R - 1
            uh = u_hat if last else u_det
            s = torch.einsum("bnj,bnje->bje", c, uh) + self.beta
            v = squash(s)                                     # [B, J, E]
            if not last:
                b = b + torch.einsum("bnje,bje->bnj", u_det, v)
        return v, couplings

    def forward(self, x, keep_coupling=False):
        u, _ = self.primary_caps(x)
        u_hat = self.votes(u)
        v, cpl = self.route(u_hat, keep_coupling)
        lengths = torch.sqrt((v * v).sum(-1))                 # [B, J]
        return v, lengths, cpl

    def decode(self, v, cls):
        mask = F.one_hot(cls, self.J).to(v.dtype).unsqueeze(-1)   # [B, J, 1]
        z = (v * mask).flatten(1)
        z = F.relu(self.fc1(z))
        z = F.relu(self.fc2(z))
        return torch.sigmoid(self.fc3(z))

    def loss(self, x, y):
        v, lengths, _ = self.forward(x)
        T = F.one_hot(y, self.J).to(lengths.dtype)
        m = T * F.relu(0.9 - lengths) ** 2 + 0.5 * (1 - T) * F.relu(lengths - 0.1) ** 2
        margin = m.sum(1).mean()
        if not self.use_decoder:
            return margin, margin, None, None
        rec = self.decode(v, y)
        rloss = ((x.flatten(1) - rec) ** 2).sum(1).mean()
        return margin + 0.0005 * rloss, margin, rloss, rec


def timed(fn, n):
    fn()  # one warm-up
    ts = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        ts.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(ts)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", choices=sorted(PRESETS), default="paper")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--c1", type=int)
    ap.add_argument("--types", type=int)
    ap.add_argument("--decoder-hidden", type=str, help="e.g. 512,1024")
    ap.add_argument("--no-decoder", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    cfg = dict(PRESETS[a.preset])
    if a.c1:
        cfg["c1"] = a.c1
    if a.types:
        cfg["types"] = a.types
    if a.decoder_hidden:
        cfg["decoder_hidden"] = tuple(int(s) for s in a.decoder_hidden.split(","))
    if a.no_decoder:
        cfg["decoder"] = False
    model = CapsNet(**cfg)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    x = torch.rand(a.batch, 1, 28, 28)
    y = torch.arange(a.batch) % 10
    x1 = torch.rand(1, 1, 28, 28)

    def train_step():
        model.train()
        opt.zero_grad(set_to_none=True)
        loss = model.loss(x, y)[0]
        loss.backward()
        opt.step()

    def infer(inp):
        with torch.no_grad():
            _, lengths, _ = model(inp)
            return lengths.argmax(1)

    train_ms = timed(train_step, a.repeat)
    model.eval()
    infer_ms = timed(lambda: infer(x), a.repeat)
    latency_ms = timed(lambda: infer(x1), 4 * a.repeat)

    print(json.dumps({
        "preset": a.preset,
        "train_step_ms": round(train_ms, 3),
        "infer_ms": round(infer_ms, 3),
        "latency_ms": round(latency_ms, 3),
        "batch": a.batch,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "capsules": model.N,
        "params": sum(p.numel() for p in model.parameters()),
        "config": {"decoder": True, **cfg},
    }))


if __name__ == "__main__":
    main()
