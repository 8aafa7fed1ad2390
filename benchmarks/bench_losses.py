"""Speed of LTKD's two formulations and the long-tailed baselines relative to `kd_loss` (forward + backward), B=256.

Prints, for each (C, G), the median over interleaved rounds of time / time(kd), with the interquartile range, of
`ltkd_loss_plain` (the plain autograd formulation), `_ltkd_fast` (the single-pass fast path; target <= 1.5x kd)
and, for scale, a straightforward autograd implementation with a Python loop over groups; `ltkd_loss` is the
plain formulation below 200 classes and the fast path from 200 on the CPU. Whether the fast path is worth having
is measured on a whole training step by `bench_ltkd_step.py`. Then, for each C, the median ratios of `bkd_loss`,
`dive_loss` and `la_kd_loss` to `kd_loss`, timed side by side (target: each <= 1.5x kd). Timings on a shared CPU
are noisy: the losses are timed alternately in one process (the order flips every round, so drift does not favour
any), and each ratio is a median over rounds.

    python benchmarks/bench_losses.py [--rounds 15] [--threads N] [--only ltkd|baselines]
"""
import argparse, statistics, time
import torch, torch.nn.functional as F
from ltkd_fastai.losses import (kd_loss, ltkd_loss_plain, _ltkd_fast, bkd_loss, dive_loss, la_kd_loss,
                                effective_number_weights)

def loop_ltkd(s, t, groups, alpha=6., beta=6., T=4.):
    "The obvious autograd implementation: one slice per group (what `ltkd_loss_plain` vectorises)."
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

def interleaved(fns, s, rounds, reps):
    "Time each loss of `fns` (forward + backward) `rounds` times, alternating the order every round."
    for f in fns.values(): time_once(f, s, 2)   # warm up
    times = {k: [] for k in fns}
    for i in range(rounds):
        for k in (list(fns) if i % 2 == 0 else list(fns)[::-1]):
            times[k].append(time_once(fns[k], s, reps if k != 'loop' else max(1, reps // 5)))
    return times

def ratio_stats(times, k, ref='kd'):
    "Median and quartiles over rounds of time(k) / time(ref)."
    ratios = [a / b for a, b in zip(times[k], times[ref])]
    q1, _, q3 = statistics.quantiles(ratios, n=4)
    return statistics.median(ratios), q1, q3

def bench_ltkd(a):
    print(f"{'C':>5} {'G':>4} {'kd (ms)':>8} {'plain/kd':>8} {'IQR':>11} {'fast/kd':>8} {'IQR':>11} {'loop/kd':>8}")
    worst = 0.
    for C, G in [(100, 3), (1000, 3), (100, 100), (1000, 100)]:
        s = torch.randn(256, C, requires_grad=True); t = torch.randn(256, C) * 2
        groups = torch.randperm(C) % G
        fns = {'kd': lambda: kd_loss(s, t), 'plain': lambda: ltkd_loss_plain(s, t, groups),
               'fast': lambda: _ltkd_fast(s, t, groups)}
        if not a.no_loop: fns['loop'] = lambda: loop_ltkd(s, t, groups)
        times = interleaved(fns, s, a.rounds, a.reps)
        (rp, p1, p3), (rf, f1, f3) = ratio_stats(times, 'plain'), ratio_stats(times, 'fast')
        rl = ratio_stats(times, 'loop')[0] if 'loop' in times else float('nan')
        worst = max(worst, rf)
        print(f"{C:>5} {G:>4} {statistics.median(times['kd'])*1e3:>8.3f} {rp:>8.2f} {p1:>5.2f}-{p3:<5.2f} "
              f"{rf:>8.2f} {f1:>5.2f}-{f3:<5.2f} {rl:>8.2f}")
    print(f"worst fast/kd ratio: {worst:.2f} (target <= 1.5)")

def bench_baselines(a):
    names = ('bkd', 'dive', 'la_kd')
    print(f"{'C':>5} {'kd (ms)':>8} " + ' '.join(f"{n + '/kd':>8} {'IQR':>11}" for n in names))
    worst = 0.
    for C in (100, 1000):
        s = torch.randn(256, C, requires_grad=True); t = torch.randn(256, C) * 2
        counts = torch.round(500 * 0.01 ** (torch.arange(C) / (C - 1))).clamp_min(1)   # long-tailed, imbalance 100
        w, lp = effective_number_weights(counts), (counts / counts.sum()).log()
        fns = {'kd': lambda: kd_loss(s, t), 'bkd': lambda: bkd_loss(s, t, w), 'dive': lambda: dive_loss(s, t),
               'la_kd': lambda: la_kd_loss(s, t, lp)}
        times = interleaved(fns, s, a.rounds, a.reps)
        stats = [ratio_stats(times, n) for n in names]
        worst = max(worst, *(r for r, _, _ in stats))
        print(f"{C:>5} {statistics.median(times['kd'])*1e3:>8.3f} " +
              ' '.join(f"{r:>8.2f} {q1:>5.2f}-{q3:<5.2f}" for r, q1, q3 in stats))
    print(f"worst baseline/kd ratio: {worst:.2f} (target <= 1.5)")

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--rounds', type=int, default=31)
    ap.add_argument('--reps', type=int, default=10, help='calls per timing')
    ap.add_argument('--threads', type=int, default=0, help='torch threads (0: leave the default)')
    ap.add_argument('--no-loop', action='store_true', help='skip the per-group-loop reference')
    ap.add_argument('--only', choices=('ltkd', 'baselines'), help='run one of the two tables')
    a = ap.parse_args()
    if a.threads: torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, B=256, median of {a.rounds} interleaved rounds")
    if a.only in (None, 'ltkd'): bench_ltkd(a)
    if a.only in (None, 'baselines'): bench_baselines(a)

if __name__ == '__main__': main()
