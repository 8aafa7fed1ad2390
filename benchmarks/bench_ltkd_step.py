"""Does LTKD's single-pass fast path pay in a whole training step? Plain autograd formulation vs fast path, side by side.

`ltkd_loss_plain` is LTKD written as the paper's equations with autograd; the fast path (`_ltkd_fast`, the custom
`torch.autograd.Function` with the closed-form gradient) computes the same loss and gradient in one pass. A loss is
a small part of a training step, so the question is not how much faster the loss is, but how much faster the
*step* is: teacher forward (`no_grad`), student forward, `CE + LTKD`, backward, SGD step, on one batch of random
images that stays in memory (no data loading, so the loss's share of the step is as large as it can be).

For each (student, teacher, C, B) both variants train their own copy of the same student with the same SGD; each
round times `--reps` steps of each, alternating step by step (the order flipping every round), so drift on a shared
machine favours neither. Printed: the median step time of each; the median over rounds of the within-round ratio
plain / fast with its interquartile range (> 1: the fast path is faster; 1.03 means it saves 3% of the step); the
loss alone (forward + backward on logits of the step's shape, ms) with each; and the difference of the two as a
share of the fast step ("diff": the saving the loss alone predicts, steadier than the ratio on a loaded machine).

    python benchmarks/bench_ltkd_step.py --large              # the table in nbs/00_losses.ipynb, 1 thread
    python benchmarks/bench_ltkd_step.py --rounds 5 --reps 2 --bs 64 --only resnet8
"""
import argparse, copy, statistics, time
import torch, torch.nn.functional as F
from ltkd_fastai.losses import ltkd_loss_plain, _ltkd_fast
from ltkd_fastai.models import get_model
from ltkd_fastai.longtail import class_groups, long_tail_counts

# (student, teacher, classes, input channels, size): the runner's digits-LT pair (1x8x8, the cheapest step there is),
# its Fashion-MNIST-LT pair (1x28x28), the CIFAR zoo's smallest student at C=10 and 100 (3x32x32), and the digits
# pair at 100 classes (a cheap network and many classes: where the loss's share of the step is largest)
CONFIGS = [('cnn_tiny', 'cnn_small', 10, 1, 8), ('cnn_tiny', 'resnet8', 10, 1, 28), ('resnet8', 'resnet14', 10, 3, 32),
           ('resnet8', 'resnet14', 100, 3, 32), ('cnn_tiny', 'cnn_small', 100, 1, 8)]
# --large: the digits pair at 200 classes (where `ltkd_loss` starts taking the fast path) and 1000 classes
# (ImageNet-LT's number), and the zoo pair at 1000 classes on 32x32 (as in downsampled ImageNet)
LARGE = [('cnn_tiny', 'cnn_small', 200, 1, 8), ('cnn_tiny', 'cnn_small', 1000, 1, 8), ('resnet8', 'resnet14', 1000, 3, 32)]

def make_step(student, teacher, loss_fn, x, y, groups, lr=0.05):
    "One training step: teacher forward, student forward, `CE + LTKD`, backward, SGD step."
    opt = torch.optim.SGD(student.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)
    def step():
        with torch.no_grad(): t = teacher(x)
        s = student(x)
        loss = F.cross_entropy(s, y) + loss_fn(s, t, groups)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step

def time_round(steps, reps, flip):
    "Seconds per step of each variant over `reps` steps each, the variants alternating step by step."
    tot, order = dict.fromkeys(steps, 0.), list(steps)[::-1] if flip else list(steps)
    for _ in range(reps):
        for k in order:
            t0 = time.perf_counter(); steps[k](); tot[k] += time.perf_counter() - t0
    return {k: v / reps for k, v in tot.items()}

def loss_only(loss_fn, B, C, groups, reps=20):
    "Median time (s) of the loss's forward + backward on random logits of the step's shape."
    s = torch.randn(B, C, requires_grad=True); t = torch.randn(B, C) * 2
    ts = []
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(reps): s.grad = None; loss_fn(s, t, groups).backward()
        ts.append((time.perf_counter() - t0) / reps)
    return statistics.median(ts)

def bench(student_name, teacher_name, C, chans, size, B, a):
    torch.manual_seed(0)
    teacher = get_model(teacher_name, C, in_chans=chans).eval()
    for p in teacher.parameters(): p.requires_grad_(False)
    torch.manual_seed(1)
    student = get_model(student_name, C, in_chans=chans).train()
    x = torch.randn(B, chans, size, size)
    counts = long_tail_counts(500, C, 100)
    y = torch.multinomial(torch.tensor(counts, dtype=torch.float), B, replacement=True)   # long-tailed labels
    groups = class_groups(counts)
    steps = {'plain': make_step(student, teacher, ltkd_loss_plain, x, y, groups),
             'fast': make_step(copy.deepcopy(student), teacher, _ltkd_fast, x, y, groups)}
    time_round(steps, 2, False)                                    # warm up (allocator, layouts, buffers)
    times = {k: [] for k in steps}
    for i in range(a.rounds):
        for k, v in time_round(steps, a.reps, i % 2 == 1).items(): times[k].append(v)
    ratios = [p / f for p, f in zip(times['plain'], times['fast'])]
    q1, med, q3 = statistics.quantiles(ratios, n=4)
    med = statistics.median(ratios)
    lp, lf = loss_only(ltkd_loss_plain, B, C, groups), loss_only(_ltkd_fast, B, C, groups)
    tf = statistics.median(times['fast'])
    print(f"{student_name:>9} {teacher_name:>9} {C:>4} {size:>4} {B:>4} {statistics.median(times['plain'])*1e3:>9.1f} "
          f"{tf*1e3:>9.1f} {med:>6.3f} {q1:>6.3f}-{q3:<6.3f} {lp*1e3:>7.2f} {lf*1e3:>7.2f} {(lp - lf) / tf * 100:>6.1f}%",
          flush=True)
    return med

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--rounds', type=int, default=9, help='interleaved rounds')
    ap.add_argument('--reps', type=int, default=3, help='training steps per timing')
    ap.add_argument('--bs', type=int, nargs='+', default=[64, 128, 256], help='batch sizes')
    ap.add_argument('--classes', type=int, nargs='+', help='only these numbers of classes')
    ap.add_argument('--only', nargs='+', help='only these students')
    ap.add_argument('--large', action='store_true', help='also the 1000-class settings')
    ap.add_argument('--threads', type=int, default=1, help='torch threads (1 is steadier on a shared machine)')
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), median of {a.rounds} interleaved rounds "
          f"of {a.reps} steps; ratio = plain step time / fast step time")
    print(f"{'student':>9} {'teacher':>9} {'C':>4} {'px':>4} {'B':>4} {'plain ms':>9} {'fast ms':>9} {'ratio':>6} "
          f"{'IQR':>13} {'loss pl':>7} {'fast':>7} {'diff':>7}")
    out = []
    for st, te, C, chans, size in CONFIGS + (LARGE if a.large else []):
        if (a.only and st not in a.only) or (a.classes and C not in a.classes): continue
        for B in a.bs: out.append(((st, C, size, B), bench(st, te, C, chans, size, B, a)))
    best = max(out, key=lambda o: o[1])
    print(f"largest gain of the fast path: {(best[1] - 1) * 100:+.1f}% of the step at {best[0]} (worth keeping: > 3%)")

if __name__ == '__main__': main()
