#!/usr/bin/env python3
"""PyTorch counterpart of `curvature bench`: the same operations on the same shapes, written
in the same CSV columns, so both tables can be compared row by row on one machine.

    python3 benches/pytorch/bench.py --csv torch.csv                  # all four models
    python3 benches/pytorch/bench.py --models mlp,cnn --device cpu
    python3 benches/pytorch/bench.py --compare ours.csv torch.csv     # side-by-side table

Models (CIFAR-shaped random input [N, 3, 32, 32], 10 classes, identical to curvature's
`BenchModel`s, so the parameter counts P match):
  mlp        3072-512-512-10, ReLU
  cnn        conv 3->16->32 (3x3, no bias, batch norm, ReLU, 2x2 max pool), dense 2048->10
  vgg16-bn   VGG-16 with batch norm, CIFAR variant, classifier 512-512-10 (no dropout)
  wrn-28-10  WideResNet-28-10 (pre-activation blocks, conv bias, stride on the 2nd conv)

Operations (median of --repeats timed calls after --warmup, torch.cuda.synchronize() after each):
  gradient                 torch.autograd.grad of the mean cross-entropy
  exact hvp                reverse-over-reverse (grad of <grad, v>, create_graph=True) as in
                           PyHessian -- the same algorithm as curvature's
  exact hvp (jvp of grad)  forward-over-reverse with torch.func.jvp(torch.func.grad(...))
  ggn product              J^T H_l J v with torch.func.jvp / torch.func.vjp
  lanczos step             PyHessian-style Lanczos (reverse-over-reverse HVP) with full
                           re-orthogonalisation (classical Gram-Schmidt twice, basis stacked
                           on the device), total / m
  sgd step, adam step      zero_grad, forward, backward, torch.optim step

Batch norm runs in training mode (batch statistics) everywhere; running statistics are not
updated inside the curvature products (torch.func.replace_all_batch_norm_modules_), matching
curvature's Objective. f32 throughout; TF32 is OFF unless --tf32 (PyTorch's cuDNN default is
on), so both libraries do strict f32 arithmetic.

torch only (no other dependency).
"""
import argparse
import csv
import math
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

CSV_HEADER = ["model", "params", "operation", "ms", "ratio", "baseline", "note", "first_ms"]


# --------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------
class Mlp(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(
            nn.Flatten(), nn.Linear(3072, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(),
            nn.Linear(512, 10))

    def forward(self, x):
        return self.net(x)


class Cnn(nn.Module):
    def __init__(self):
        super().__init__()
        layers, c = [], 3
        for o in (16, 32):
            layers += [nn.Conv2d(c, o, 3, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU(),
                       nn.MaxPool2d(2)]
            c = o
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(32 * 8 * 8, 10)

    def forward(self, x):
        return self.fc(torch.flatten(self.features(x), 1))


class Vgg16(nn.Module):
    CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]

    def __init__(self):
        super().__init__()
        layers, c = [], 3
        for v in self.CFG:
            if v == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                layers += [nn.Conv2d(c, v, 3, padding=1), nn.BatchNorm2d(v), nn.ReLU()]
                c = v
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10))

    def forward(self, x):
        return self.classifier(torch.flatten(self.features(x), 1))


class WideBlock(nn.Module):
    def __init__(self, inp, planes, stride):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(inp)
        self.conv1 = nn.Conv2d(inp, planes, 3, padding=1, bias=True)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=True)
        self.shortcut = None
        if stride != 1 or inp != planes:
            self.shortcut = nn.Conv2d(inp, planes, 1, stride=stride, bias=True)

    def forward(self, x):
        h = self.conv1(F.relu(self.bn1(x)))
        h = self.conv2(F.relu(self.bn2(h)))
        return h + (x if self.shortcut is None else self.shortcut(x))


class WideResNet(nn.Module):
    def __init__(self, depth=28, widen=10, classes=10):
        super().__init__()
        n = (depth - 4) // 6
        self.conv1 = nn.Conv2d(3, 16, 3, padding=1, bias=True)
        blocks, inp = [], 16
        for s, width in enumerate((16, 32, 64)):
            planes = width * widen
            for b in range(n):
                blocks.append(WideBlock(inp, planes, 2 if s > 0 and b == 0 else 1))
                inp = planes
        self.blocks = nn.Sequential(*blocks)
        self.bn = nn.BatchNorm2d(inp)
        self.fc = nn.Linear(inp, classes)

    def forward(self, x):
        h = F.relu(self.bn(self.blocks(self.conv1(x))))
        return self.fc(F.adaptive_avg_pool2d(h, 1).flatten(1))


MODELS = {"mlp": Mlp, "cnn": Cnn, "vgg16-bn": Vgg16, "wrn-28-10": WideResNet}


# --------------------------------------------------------------------------------------------
# Timing
# --------------------------------------------------------------------------------------------
def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_ms(fn, device, warmup, repeats):
    for _ in range(warmup):
        fn()
        sync(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


# --------------------------------------------------------------------------------------------
# Operations
# --------------------------------------------------------------------------------------------
def bench_model(name, args, device, log):
    torch.manual_seed(0)
    n = args.batch
    model = MODELS[name]().to(device)
    model.train()
    x = torch.randn(n, 3, 32, 32, device=device)
    y = torch.arange(n, device=device) % 10
    params = [p for p in model.parameters() if p.requires_grad]
    p_count = sum(p.numel() for p in params)
    rows = []

    def row(op, ms, base, baseline, note=""):
        rows.append({"model": name, "params": p_count, "operation": op, "ms": ms,
                     "ratio": (ms / base) if base else None, "baseline": baseline,
                     "note": note})

    def time_it(what, fn):
        log(f"timing {name} (P = {p_count}, batch {n}): {what}")
        return median_ms(fn, device, args.warmup, args.repeats)

    # Curvature products never update running statistics (as curvature's Objective).
    curv = MODELS[name]().to(device)
    curv.load_state_dict(model.state_dict())
    curv.train()
    torch.func.replace_all_batch_norm_modules_(curv)
    cparams = [p for p in curv.parameters()]
    names = [k for k, _ in curv.named_parameters()]
    buffers = dict(curv.named_buffers())

    def outputs(ps):
        return torch.func.functional_call(curv, ({**dict(zip(names, ps)), **buffers},), (x,))

    def loss_of(ps):
        return F.cross_entropy(outputs(ps), y)

    def gradient():
        return torch.autograd.grad(F.cross_entropy(curv(x), y), cparams)

    grad = time_it("gradient", gradient)
    row("gradient", grad, grad, "gradient")

    v = [torch.randn_like(p) for p in cparams]

    def hvp_rr(vec):
        g = torch.autograd.grad(F.cross_entropy(curv(x), y), cparams, create_graph=True)
        gv = sum((a * b).sum() for a, b in zip(g, vec))
        return torch.autograd.grad(gv, cparams)

    hvp = time_it("exact HVP (reverse-over-reverse)", lambda: hvp_rr(v))
    row("exact hvp", hvp, grad, "gradient", "reverse-over-reverse (PyHessian)")

    primals = tuple(p.detach() for p in cparams)
    tangents = tuple(v)
    grad_fn = torch.func.grad(loss_of)

    def hvp_fr():
        return torch.func.jvp(grad_fn, (primals,), (tangents,))[1]

    fr = time_it("exact HVP (jvp of grad)", hvp_fr)
    row("exact hvp (jvp of grad)", fr, grad, "gradient", "forward-over-reverse, torch.func")

    def ggn():
        z, jv = torch.func.jvp(outputs, (primals,), (tangents,))
        p = torch.softmax(z.detach(), dim=1)
        hjv = (p * jv - p * (p * jv).sum(1, keepdim=True)) / n
        _, vjp_fn = torch.func.vjp(outputs, primals)
        return vjp_fn(hjv)[0]

    g = time_it("GGN product", ggn)
    row("ggn product", g, grad, "gradient", "torch.func jvp + vjp")

    m = args.lanczos_steps
    flat_v = torch.cat([t.reshape(-1) for t in v])

    def unflat(t):
        out, i = [], 0
        for p in cparams:
            out.append(t[i:i + p.numel()].view_as(p))
            i += p.numel()
        return out

    def lanczos():
        q = flat_v / flat_v.norm()
        basis, q_prev, beta = [], None, 0.0
        for j in range(m):
            w = torch.cat([t.reshape(-1) for t in hvp_rr(unflat(q))])
            if q_prev is not None:
                w = w - beta * q_prev
            alpha = float(torch.dot(w, q).double())
            w = w - alpha * q
            basis.append(q)
            Q = torch.stack(basis)
            for _ in range(2):
                w = w - Q.t() @ (Q @ w)
            beta = float(w.double().norm())
            q_prev, q = q, w / beta

    total = time_it(f"Lanczos ({m} steps)", lanczos)
    row("lanczos step", total / m, grad, "gradient",
        f"{m} steps with full re-orthogonalisation: {total:.1f} ms")
    batches = math.ceil(50000 / n)
    est = 100 * batches * hvp
    row("est. 100-step lanczos on 50k images", est, None, "",
        f"100 x {batches} batch HVPs = {est / 60000:.1f} min; basis 100 x P x 4 B = "
        f"{100 * p_count * 4 / 1e9:.2f} GB")

    if not args.no_optimisers:
        def first_order(opt):
            mdl = MODELS[name]().to(device)
            mdl.load_state_dict(model.state_dict())
            mdl.train()
            o = opt(mdl.parameters())

            def step():
                o.zero_grad(set_to_none=True)
                F.cross_entropy(mdl(x), y).backward()
                o.step()
            return step

        sgd = time_it("SGD step", first_order(
            lambda ps: torch.optim.SGD(ps, lr=1e-4, momentum=0.9)))
        row("sgd step", sgd, sgd, "sgd step", f"{n / (sgd / 1e3):.0f} images/s")
        adam = time_it("Adam step", first_order(lambda ps: torch.optim.Adam(ps, lr=1e-4)))
        row("adam step", adam, sgd, "sgd step")
    return rows


def write_csv(rows, path):
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_HEADER)
        w.writeheader()
        for r in rows:
            r = dict(r)
            r["ms"] = f"{r['ms']:.4f}"
            r["ratio"] = "" if r["ratio"] is None else f"{r['ratio']:.3f}"
            w.writerow(r)


def print_table(rows, out=sys.stdout):
    print(f"{'model':<10} {'P':>11} {'operation':<34} {'ms':>12} {'ratio':>8}  note", file=out)
    for r in rows:
        ratio = "-" if r["ratio"] in (None, "") else f"{float(r['ratio']):.2f}"
        print(f"{r['model']:<10} {int(r['params']):>11} {r['operation']:<34} "
              f"{float(r['ms']):>12.3f} {ratio:>8}  {r['note']}", file=out)


def compare(ours_path, theirs_path):
    """Side-by-side table: ms of both and ours / PyTorch, joined on (model, operation)."""
    def load(path):
        with open(path) as f:
            return {(r["model"], r["operation"]): r for r in csv.DictReader(f)}
    ours, theirs = load(ours_path), load(theirs_path)
    print(f"{'model':<10} {'operation':<34} {'P ours':>11} {'P torch':>11} {'ours ms':>12} "
          f"{'torch ms':>12} {'ours/torch':>10}")
    for key, o in ours.items():
        t = theirs.get(key)
        if t is None:
            continue
        ratio = float(o["ms"]) / float(t["ms"])
        print(f"{key[0]:<10} {key[1]:<34} {o['params']:>11} {t['params']:>11} "
              f"{float(o['ms']):>12.3f} {float(t['ms']):>12.3f} {ratio:>10.2f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--models", default="mlp,cnn,vgg16-bn,wrn-28-10")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--lanczos-steps", type=int, default=10)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--tf32", action="store_true", help="allow TF32 matmuls and convolutions")
    ap.add_argument("--no-optimisers", action="store_true")
    ap.add_argument("--csv", help="write the rows to this CSV file")
    ap.add_argument("--compare", nargs=2, metavar=("OURS_CSV", "TORCH_CSV"),
                    help="print ours/PyTorch for two CSV files and exit")
    args = ap.parse_args()
    if args.compare:
        compare(*args.compare)
        return
    torch.backends.cuda.matmul.allow_tf32 = args.tf32
    torch.backends.cudnn.allow_tf32 = args.tf32
    torch.backends.cudnn.benchmark = True
    device = torch.device(args.device)
    names = [s.strip() for s in args.models.split(",") if s.strip()]
    for name in names:
        if name not in MODELS:
            sys.exit(f"unknown model `{name}`; valid: {', '.join(MODELS)}")
    rows = []
    for name in names:
        rows += bench_model(name, args, device, lambda s: print(s, file=sys.stderr, flush=True))
    dev = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"pytorch {torch.__version__} on {dev}, batch {args.batch}, median of {args.repeats} "
          f"after {args.warmup} warm-up calls, f32, tf32 {'on' if args.tf32 else 'off'}")
    print_table(rows)
    if args.csv:
        write_csv(rows, args.csv)
        print(f"written: {args.csv}")


if __name__ == "__main__":
    main()
