"""Throughput of a `distill_learner` training epoch, measured in one process, configurations interleaved, medians.

Compares, on the same in-memory data (random 3x32x32 uint8 images, long-tailed labels, built by
`ltkd_fastai.data.arrays_lt` without augmentation) and the same teacher / student:

1. `distill_learner(...).fit(1)` against a plain PyTorch loop doing the same work per epoch (index the batch,
   normalise it, teacher forward under `no_grad`, student forward, the same loss, backward, SGD step; then the
   validation pass) — target >= 0.95;
2. `distill_learner(..., cache_teacher=True)` against `cache_teacher=False`;
3. `distill_learner` against fasterai's `KnowledgeDistillationCallback` (`SoftTarget` loss, the same
   0.1*CE + 0.9*KD) — target >= 1.0. fasterai is optional: install it in a venv that sees the system packages
   (`python -m venv --system-site-packages /tmp/fai && /tmp/fai/bin/pip install fasterai`) and run this script
   with that venv's python. fasterai's callback is timed twice: with the teacher as a user would pass it
   (parameters requiring grad: fasterai then backpropagates into the teacher) and with the teacher frozen.
   (Or, without touching a venv: `pip install --no-deps --target /tmp/fai_pkgs fasterai torch-pruning einops`, then
   `PYTHONPATH=/tmp/fai_pkgs python benchmarks/bench_step.py`.)
4. with `--features`: the feature methods of `METHODS` (`fitnet`, `reviewkd`, `catkd`) against the logit-only `kd`
   step with the same teacher and student — each method's whole step (hooks, connector, loss) — and, separately, the
   cost of capturing the features alone: a temporary method that takes the same method's layers (`fs`/`ft`, hooks
   active on student and teacher) but whose loss ignores them and returns `kd_loss(s, t)`, against plain `kd` —
   target <= 1.10 (capturing features adds at most 10% to a step). These rows time the training phase only (fastai's
   `before_train` to `after_train`: every training batch, no validation, no per-fit setup), per step.

Every configuration trains its own copy of the same student with the same SGD (torch's, wrapped by fastai's
`OptimWrapper` on the fastai side). Throughput ratio = time of the other / time of distill_learner (> 1: ours faster);
the headline number is the median over rounds of the within-round ratio, which is robust to the load of a shared
machine drifting during the run; the ratio of medians and of the fastest epochs are printed beside it.

    python benchmarks/bench_step.py                       # about 1-2 minutes on 2 CPU cores
    python benchmarks/bench_step.py --features            # + fitnet/reviewkd/catkd and capture-only rows: ~4 min CPU
                                                          # (7.5 min wall on a loaded 2-core machine; reviewkd is ~4x kd)
    python benchmarks/bench_step.py --quick --features    # smoke run, about a minute: few images and rounds
    python benchmarks/bench_step.py --reps 9 --n 2048 --teacher resnet14 --student resnet8
"""
import argparse, copy, statistics, sys, time, warnings
from functools import partial

import torch
import torch.nn.functional as F


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--n', type=int, default=768, help='training images')
    p.add_argument('--n-valid', type=int, default=128, help='validation images')
    p.add_argument('--bs', type=int, default=128, help='batch size')
    p.add_argument('--classes', type=int, default=10)
    p.add_argument('--teacher', default='resnet8', help='zoo name of the teacher')
    p.add_argument('--student', default='cnn_tiny', help='zoo name of the student')
    p.add_argument('--method', default='kd', help='distillation method (fasterai is compared for kd only)')
    p.add_argument('--reps', type=int, default=7, help='timed epochs per configuration')
    p.add_argument('--threads', type=int, default=1, help='torch threads (1 is steadier on a shared machine)')
    p.add_argument('--no-fasterai', action='store_true', help='skip the fasterai comparison')
    p.add_argument('--features', action='store_true',
                   help='also time the feature methods (fitnet, reviewkd, catkd) and feature capture alone against kd')
    p.add_argument('--feature-methods', nargs='+', default=None, help='feature methods to time (default: every registered '
                   "method whose loss takes 'fs'/'ft')")
    p.add_argument('--quick', action='store_true', help='smoke run: --n 256 --n-valid 64 --reps 3 unless given')
    args = p.parse_args(argv)
    if args.quick:  # smaller defaults, explicit values win
        given = set(a.split('=')[0] for a in (sys.argv[1:] if argv is None else argv))
        for opt, v in (('--n', 256), ('--n-valid', 64), ('--reps', 3)):
            if opt not in given: setattr(args, opt[2:].replace('-', '_'), v)
    return args


def _capture_kd(s, t, fs, ft, T=4.):
    "Takes the features (so the hooks capture them) but ignores them: kd's loss"
    from ltkd_fastai.losses import kd_loss
    return kd_loss(s, t, T)


def capture_only_method(method):
    "Register (temporarily) a method with `method`'s layers whose loss is kd's: it costs the feature capture and nothing else"
    from ltkd_fastai.distill import get_method, register_method
    spec, kd = get_method(method), get_method('kd')
    key = f'bench_capture_{method}'
    register_method(key, _capture_kd, defaults=kd.defaults, ce_weight=kd.ce_weight, weight=kd.weight,
                    features=spec.features, replace=True, formula='kd, with the features captured and ignored')
    return key


def make_data(n, n_valid, classes, seed=0):
    "Random uint8 images; long-tailed training labels (imbalance 10), balanced validation labels"
    from ltkd_fastai.longtail import long_tail_counts
    g = torch.Generator().manual_seed(seed)
    counts = torch.tensor(long_tail_counts(1000, classes, 10), dtype=torch.float64)
    counts = (counts / counts.sum() * n).floor().long()
    counts[0] += n - int(counts.sum())
    y = torch.repeat_interleave(torch.arange(classes), counts)
    yv = torch.arange(n_valid) % classes
    x = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g)
    xv = torch.randint(0, 256, (n_valid, 3, 32, 32), dtype=torch.uint8, generator=g)
    return x, y, xv, yv


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    warnings.filterwarnings('ignore')
    from fastai.learner import Learner
    from fastai.optimizer import OptimWrapper
    from fastai.losses import CrossEntropyLossFlat
    from fastai.metrics import accuracy
    from ltkd_fastai.data import arrays_lt
    from ltkd_fastai.models import get_model
    from ltkd_fastai.metrics import group_metrics
    from fastai.callback.core import Callback
    from ltkd_fastai.distill import METHODS, distill_learner, get_method, method_config

    class TrainTimer(Callback):
        "Wall and CPU time of each training phase (every training batch; no validation, no per-fit setup)"
        order = -100  # first at `before_train`, first at `after_train`
        def __init__(self): self.wall, self.cpu, self.steps = [], [], []
        def before_train(self): self.t0, self.c0, self.n = time.perf_counter(), time.process_time(), 0
        def after_batch(self):
            if self.training: self.n += 1
        def after_train(self):
            self.wall.append(time.perf_counter() - self.t0); self.cpu.append(time.process_time() - self.c0)
            self.steps.append(self.n)

    x, y, xv, yv = make_data(args.n, args.n_valid, args.classes)
    mean, std = [0.5] * 3, [0.25] * 3
    dls = arrays_lt(x, y, xv, yv, imb_factor=None, bs=args.bs, val_bs=args.bs, augment=False,
                    stats=(mean, std), div=255., device='cpu')
    C = args.classes
    torch.manual_seed(0)
    teacher = get_model(args.teacher, C).eval()
    torch.manual_seed(1)
    student0 = get_model(args.student, C)
    lr, mom, wd = 0.01, 0.9, 5e-4
    opt_func = partial(OptimWrapper, opt=torch.optim.SGD, momentum=mom, weight_decay=wd)

    # ---- the plain PyTorch loop
    spec, cfg = get_method(args.method), method_config(args.method)
    ce_w, w, hp = cfg['ce_weight'], cfg['weight'], cfg['hparams']
    groups = dls.groups
    log_prior = torch.tensor(dls.class_counts, dtype=torch.float32).clamp_min(1).div(sum(dls.class_counts)).log()
    m_, s_ = torch.tensor(mean).view(1, 3, 1, 1), torch.tensor(std).view(1, 3, 1, 1)
    plain_student = copy.deepcopy(student0)
    plain_opt = torch.optim.SGD(plain_student.parameters(), lr=lr, momentum=mom, weight_decay=wd)
    teacher_frozen = copy.deepcopy(teacher).requires_grad_(False).eval()

    plain_timer = TrainTimer()
    def plain_epoch():
        plain_student.train()
        t0, c0 = time.perf_counter(), time.process_time()
        perm, bs = torch.randperm(len(y)), args.bs
        for i in range(len(y) // bs):
            idx = perm[i * bs:(i + 1) * bs]
            xb, yb = (x[idx].float().div_(255.) - m_) / s_, y[idx]
            with torch.no_grad(): t = teacher_frozen(xb)
            s = plain_student(xb)
            ctx = dict(t=t, target=yb, groups=groups, log_prior=log_prior)
            loss = ce_w * F.cross_entropy(s, yb) if ce_w else 0.
            if spec.loss is not None: loss = loss + w * spec.loss(s, *[ctx[k] for k in spec.inputs], **hp)
            plain_opt.zero_grad(); loss.backward(); plain_opt.step()
        plain_timer.wall.append(time.perf_counter() - t0); plain_timer.cpu.append(time.process_time() - c0)
        plain_timer.steps.append(len(y) // bs)
        plain_student.eval()
        correct = 0
        with torch.no_grad():
            for i in range(0, len(yv), bs):
                xb = (xv[i:i + bs].float().div_(255.) - m_) / s_
                correct += (plain_student(xb).argmax(1) == yv[i:i + bs]).sum().item()
        return correct / len(yv)

    # ---- fastai learners
    def ours(cache, method=args.method):
        return distill_learner(dls, copy.deepcopy(teacher), copy.deepcopy(student0), method,
                               cache_teacher=cache, opt_func=opt_func, lr=lr)

    configs = {'plain PyTorch loop': plain_epoch}
    timers = {'plain PyTorch loop': plain_timer}  # training-phase times, by configuration
    def fit_fn(learn, name):
        timers[name] = timer = TrainTimer()
        learn.add_cb(timer)
        def f():
            with learn.no_bar(), learn.no_logging(): learn.fit(1, lr)
        return f
    def add(name, learn): configs[name] = fit_fn(learn, name)
    add(f'distill_learner ({args.method})', ours(False))
    add(f'distill_learner ({args.method}) + cache', ours(True))

    fasterai_note = None
    if args.no_fasterai: fasterai_note = 'skipped (--no-fasterai)'
    elif args.method != 'kd': fasterai_note = f'skipped (fasterai has no {args.method!r}; use --method kd)'
    else:
        try:
            from fasterai.distill.distillation_callback import KnowledgeDistillationCallback
            from fasterai.distill.losses import SoftTarget
            import fasterai
            T = hp['T']
            def fasterai_learner(frozen):
                t = copy.deepcopy(teacher)
                if frozen: t.requires_grad_(False)
                cb = KnowledgeDistillationCallback(t, partial(SoftTarget, T=T), weight=w)  # lerp: (1-w)*CE + w*KD
                return Learner(dls, copy.deepcopy(student0), loss_func=CrossEntropyLossFlat(), opt_func=opt_func, lr=lr,
                               metrics=[accuracy, *group_metrics(dls.groups)], cbs=cb)
            add('fasterai KD (teacher as given)', fasterai_learner(False))
            add('fasterai KD (teacher frozen)', fasterai_learner(True))
            fasterai_note = f'fasterai {fasterai.__version__}'
        except Exception as e:  # not installed, or broken against this fastai
            fasterai_note = f'not available: {type(e).__name__}: {e}'

    feat_rows, feat_layers = [], {}
    if args.features:
        fms = args.feature_methods or [k for k in METHODS if get_method(k).uses_features and not k.startswith('bench_')]
        kd_name = 'distill_learner (kd)'
        if kd_name not in configs: add(kd_name, ours(False, 'kd'))
        for m in fms:
            learn = ours(False, m)
            add(f'distill_learner ({m})', learn)
            feat_layers[m] = learn.distill.features
            cap = capture_only_method(m)
            try: add(f'kd + {m} features captured', ours(False, cap))
            finally: METHODS.pop(cap, None)  # temporary: the learner's callback keeps its spec
            feat_rows += [(f'{m} step vs kd step', f'distill_learner ({m})', kd_name, ''),
                          (f'{m} capture only vs kd', f'kd + {m} features captured', kd_name, '(target <= 1.10)')]

    names = list(configs)
    print(f'{args.n} training / {args.n_valid} validation images 3x32x32, bs {args.bs}, {C} classes; '
          f'teacher {args.teacher}, student {args.student}, method {args.method}; torch threads {args.threads}; '
          f'{args.reps} timed epochs each, interleaved')
    for f in configs.values(): f()  # warm-up (and the cache's one pass over the data)
    times, cpu = {k: [] for k in names}, {k: [] for k in names}
    for r in range(args.reps):
        order = names[r % len(names):] + names[:r % len(names)]  # rotate so no configuration always goes first
        for k in order:
            t0, c0 = time.perf_counter(), time.process_time()
            configs[k]()
            times[k].append(time.perf_counter() - t0); cpu[k].append(time.process_time() - c0)
    med = {k: statistics.median(v) for k, v in times.items()}
    best = {k: min(v) for k, v in times.items()}
    for k in names:
        print(f'  {k:<40s} median {med[k]:.3f} s/epoch  (min {best[k]:.3f}, max {max(times[k]):.3f}); '
              f'CPU time median {statistics.median(cpu[k]):.3f} s')
    ours_k = f'distill_learner ({args.method})'
    rows = [('distill_learner vs plain PyTorch loop', 'plain PyTorch loop', ours_k, '(target >= 0.95)'),
            ('cache_teacher=True vs False', ours_k, ours_k + ' + cache', '')]
    if 'fasterai KD (teacher as given)' in med:
        rows += [('distill_learner vs fasterai (as given)', 'fasterai KD (teacher as given)', ours_k, '(target >= 1.0)'),
                 ('distill_learner vs fasterai (frozen)', 'fasterai KD (teacher frozen)', ours_k, '(target >= 1.0)')]
    print('throughput ratios = time of the other / time of ours (> 1: ours faster).\n'
          '  paired: median over rounds of the ratio within a round (cancels drifts in machine load);\n'
          '  medians: ratio of the medians; best: ratio of the fastest epochs; CPU: paired, on process CPU time\n'
          '  (one torch thread, no workers: the CPU time is the work done, whatever else runs on the machine)')
    ratios = {}
    paired = lambda d, o, m: statistics.median(a / b for a, b in zip(d[o], d[m]))
    for label, other, mine, target in rows:
        ratios[label] = paired(times, other, mine)
        print(f'  {label:<40s}: paired {ratios[label]:.3f}   medians {med[other] / med[mine]:.3f}   '
              f'best {best[other] / best[mine]:.3f}   CPU {paired(cpu, other, mine):.3f}  {target}')
    print(f'  fasterai: {fasterai_note}')
    if feat_rows:
        tw = {k: t.wall for k, t in timers.items()}; tc = {k: t.cpu for k, t in timers.items()}
        print('feature methods: training phase only (every training batch, no validation), per step')
        for m, (sl, tl) in feat_layers.items(): print(f'  {m:<9s} student layers {sl}, teacher layers {tl}')
        steps = timers['distill_learner (kd)'].steps[-1]
        for k in [kd_name] + [r[1] for r in feat_rows]:
            print(f'  {k:<40s} median {1000 * statistics.median(tw[k]) / steps:7.1f} ms/step  '
                  f'(min {1000 * min(tw[k]) / steps:.1f}, max {1000 * max(tw[k]) / steps:.1f}); '
                  f'CPU median {1000 * statistics.median(tc[k]) / steps:.1f} ms/step')
        print('time ratios = time of the feature step / time of the kd step (< 1.10: at most 10% more);\n'
              '  paired / medians / best / CPU as above')
        for label, other, mine, target in feat_rows:
            ratios[label] = paired(tw, other, mine)
            print(f'  {label:<40s}: paired {ratios[label]:.3f}   medians {statistics.median(tw[other]) / statistics.median(tw[mine]):.3f}   '
                  f'best {min(tw[other]) / min(tw[mine]):.3f}   CPU {paired(tc, other, mine):.3f}  {target}')
    return ratios


if __name__ == '__main__':
    main()
