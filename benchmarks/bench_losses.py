"""Speed of `ltkd_loss` relative to `kd_loss` (forward + backward), B=256.

Prints, for each (C, G), the median over interleaved rounds of time(ltkd) / time(kd) with its interquartile
range, and the same for a straightforward autograd implementation with a Python loop over groups, for scale.
Target: ltkd <= 1.5x kd. Timings on a shared CPU are noisy: the losses are timed alternately in one process
(the order flips every round, so drift does not favour either), and the ratio is a median over rounds.

    python benchmarks/bench_losses.py [--rounds 15] [--threads N]
"""
import argparse, statistics, time
import torch, torch.nn.functional as F
from ltkd_fastai.losses import kd_loss, ltkd_loss

def loop_ltkd(s, t, groups, alpha=6., beta=6., T=4.):
    "The obvious autograd implementation: one slice per group (what the custom Function replaces)."
    G = int(groups.max()) + 1
    ps, pt = F.softmax(s / T, 1), F.softmax(t / T, 1)
    Ps = torch.stack([ps[:, groups == g].sum(1) for g in range(G)], 1)
    Pt = torch.stack([pt[:, groups == g].sum(1) for g in range(G)], 1)
    S = Pt.sum(0); Ph = Pt * (S.mean() / S); Ph = Ph / Ph.sum(1, keepdim=True)
    inter = F.kl_div(Ps.log(), Ph, reduction='batchmean')
    intra = sum(F.kl_div(F.log_softmax(s[:, groups == g] / T, 1), F.softmax(t[:, groups == g] / T, 1),
                         reduction='batchmean') for g in range(G))
    return (alpha * inter + beta * intra) * T * T

def time_once(fn, s, reps):
    t0 = time.perf_counter()
    for _ in range(reps):
        s.grad = None
        fn().backward()
    return (time.perf_counter() - t0) / reps

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--rounds', type=int, default=31)
    ap.add_argument('--reps', type=int, default=10, help='calls per timing')
    ap.add_argument('--threads', type=int, default=0, help='torch threads (0: leave the default)')
    ap.add_argument('--no-loop', action='store_true', help='skip the per-group-loop reference')
    a = ap.parse_args()
    if a.threads: torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, B=256, median of {a.rounds} interleaved rounds")
    print(f"{'C':>5} {'G':>4} {'kd (ms)':>8} {'ltkd (ms)':>9} {'ltkd/kd':>8} {'IQR':>11} {'loop/kd':>8}")
    worst = 0.
    for C, G in [(100, 3), (1000, 3), (100, 100), (1000, 100)]:
        s = torch.randn(256, C, requires_grad=True); t = torch.randn(256, C) * 2
        groups = torch.randperm(C) % G
        fns = {'kd': lambda: kd_loss(s, t), 'ltkd': lambda: ltkd_loss(s, t, groups)}
        if not a.no_loop: fns['loop'] = lambda: loop_ltkd(s, t, groups)
        for f in fns.values(): time_once(f, s, 2)   # warm up
        times = {k: [] for k in fns}
        for i in range(a.rounds):
            for k in (list(fns) if i % 2 == 0 else list(fns)[::-1]):
                times[k].append(time_once(fns[k], s, a.reps if k != 'loop' else max(1, a.reps // 5)))
        ratios = [l / k for l, k in zip(times['ltkd'], times['kd'])]
        r, (q1, _, q3) = statistics.median(ratios), statistics.quantiles(ratios, n=4)
        rl = statistics.median(l / k for l, k in zip(times['loop'], times['kd'])) if 'loop' in times else float('nan')
        worst = max(worst, r)
        print(f"{C:>5} {G:>4} {statistics.median(times['kd'])*1e3:>8.3f} {statistics.median(times['ltkd'])*1e3:>9.3f} "
              f"{r:>8.2f} {q1:>5.2f}-{q3:<5.2f} {rl:>8.2f}")
    print(f"worst ltkd/kd ratio: {worst:.2f} (target <= 1.5)")

if __name__ == '__main__': main()
