"""Checks capsnet_bench.CapsNet against ../shared/fixtures/capsnet-reference (tiny config),
so that the PyTorch side of the CPU comparison computes the same network as sparsecaps."""
import json, os, struct, sys
import numpy as np, torch
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from capsnet_bench import CapsNet
FX = os.path.join(HERE, "../../../shared/fixtures/capsnet-reference/")
def load_st(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    hdr = json.loads(raw[8:8 + n]); base = 8 + n; out = {}
    dt = {"F32": np.float32, "F64": np.float64, "I64": np.int64, "I32": np.int32, "U8": np.uint8}
    for k, m in hdr.items():
        if k == "__metadata__": continue
        s, e = m["data_offsets"]
        out[k] = torch.from_numpy(np.frombuffer(raw[base + s: base + e], dtype=dt[m["dtype"]]).reshape(m["shape"]).copy())
    return out
t = load_st(FX + "reference.safetensors")
cfg = json.load(open(FX + "reference.json"))["config"]
torch.set_num_threads(1)
m = CapsNet(c1=cfg["conv1_channels"], types=cfg["types"], decoder_hidden=tuple(cfg["decoder_hidden"])).double()
sd = {"conv1.weight": "param.conv1.weight", "conv1.bias": "param.conv1.bias",
      "primary.weight": "param.primary.weight", "primary.bias": "param.primary.bias",
      "W": "param.digit.weight", "beta": "param.digit.bias",
      "fc1.weight": "param.decoder.fc1.weight", "fc1.bias": "param.decoder.fc1.bias",
      "fc2.weight": "param.decoder.fc2.weight", "fc2.bias": "param.decoder.fc2.bias",
      "fc3.weight": "param.decoder.fc3.weight", "fc3.bias": "param.decoder.fc3.bias"}
m.load_state_dict({k: t[v].double() for k, v in sd.items()})
x = t["input.images"].double(); y = t["input.labels"].long()
worst = 0.0
def cmp(name, a, ref):
    global worst
    d = (a.detach().double() - ref.double().reshape(a.shape)).abs().max().item(); worst = max(worst, d)
    print(f"{name:32s} maxabs {d:.2e}")
u, h = m.primary_caps(x); cmp("conv1_out", h, t["expected.conv1_out"]); cmp("primary_caps", u, t["expected.primary_caps"])
uh = m.votes(u); cmp("votes", uh, t["expected.votes"])
v, cpl = m.route(uh, keep_coupling=True); cmp("coupling", torch.stack(cpl), t["expected.coupling"]); cmp("class_caps", v, t["expected.class_caps"])
loss, margin, rl, rec = m.loss(x, y)
_, lengths, _ = m(x); cmp("lengths", lengths, t["expected.lengths"])
cmp("margin_loss", margin.reshape(1), t["expected.margin_loss"]); cmp("reconstruction", rec, t["expected.reconstruction"])
cmp("reconstruction_loss(x0.0005)", (0.0005 * rl).reshape(1), t["expected.reconstruction_loss"]); cmp("total_loss", loss.reshape(1), t["expected.total_loss"])
loss.backward()
for p, k in [("conv1.weight", "conv1.weight"), ("primary.weight", "primary.weight"), ("W", "digit.weight"), ("beta", "digit.bias")]:
    cmp("grad." + k, dict(m.named_parameters())[p].grad, t["expected.grad." + k])
print("PASS" if worst < 1e-4 else "FAIL", "worst", worst)
