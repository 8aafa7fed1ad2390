"""One GPU used well: distill_learner against a plain PyTorch loop, loss finiteness in fp16/bf16, the quick start on a GPU.

Three parts, printed as they finish, one process:

1. **throughput** — on synthetic CIFAR-shaped data (random 3x32x32 uint8 images, 100 classes, long-tailed labels;
   `ltkd_fastai.data.arrays_lt` without augmentation, as in `bench_step.py`), a `distill_learner` epoch (train +
   validation, `learn.fit(1)`) against a plain PyTorch loop doing the same work with the same AMP setting: index and
   normalise the batch, teacher forward under `no_grad`, student forward, the method's loss in float32 (CE +
   distillation), backward (with a `GradScaler` for fp16, as fastai's `MixedPrecision`), SGD step; then the
   validation pass (CE and accuracy). Each comparison is made without and with the teacher-logit cache
   (`cache_teacher=True`; the plain loop then indexes a table of teacher logits computed once). Configurations are
   interleaved, each round in a rotated order; the ratio printed is the median over rounds of (plain loop time /
   distill_learner time) within a round: >= 0.95 is the target (> 1: distill_learner faster).
2. **finite** — every method of `ltkd_fastai.distill.METHODS` whose loss takes only logit-level inputs (teacher
   logits, targets, groups, class prior/counts, group sums, progress) is evaluated on 1e4-scale logits held in
   float16 and in bfloat16, under autocast: the loss must be float32 and finite, its gradient finite. Feature
   methods are listed as skipped (they need captured features, not logits).
3. **quickstart** — stand-in CIFAR-100 files in the python-pickle layout `cifar_lt` reads (`cifar-100-python/train`,
   `test`, `meta`; learnable synthetic images, 500 training and 100 test images per class like CIFAR-100) are
   written to a temporary folder named by `$LTKD_DATA`; the code cells of `nbs/tutorials/quickstart.ipynb` then run
   in order with its GPU branch (CIFAR-100-LT, ResNet32x4 -> ResNet8x4, the paper's SGD schedule) at a reduced
   budget (`--quickstart-epochs`). Cells flagged `download` or `eval: false` are skipped, as under `nbdev_test`.

On a GPU (under 10 minutes on one recent GPU):

    python benchmarks/gpu_check.py | tee benchmarks/results/gpu_check.txt
    python benchmarks/gpu_check.py --compile            # also torch.compile student and teacher

On a CPU, tiny sizes, a few batches (about 30 s; what `tests/test_gpu_check.py` runs):

    python benchmarks/gpu_check.py --smoke

Output lines start with the part's name (`throughput`, `ratio`, `finite`, `quickstart`) and the last line is
`gpu_check: ok` or `gpu_check: FAILED (...)`; the exit status is 1 when a loss is not finite or the quick start
fails (a ratio below target is reported, not fatal: pass `--strict` to make it so).
"""
import argparse, copy, json, math, os, statistics, sys, tempfile, time, warnings
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from bench_step import make_data  # noqa: E402  (random uint8 images, long-tailed labels)

LOGIT_INPUTS = {'t', 'target', 'groups', 'log_prior', 'class_counts', 'group_sums', 'epoch', 'pct_train'}
AMP_DTYPES = {'fp16': torch.float16, 'bf16': torch.bfloat16}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--smoke', action='store_true', help='tiny sizes and models on any device (CPU tests)')
    p.add_argument('--device', default=None, help='default: cuda if available, else cpu')
    p.add_argument('--amp', default=None, help="comma-separated AMP modes for the throughput part: fp16, bf16, none "
                                                "(default: bf16,fp16 on a GPU, none on a CPU)")
    p.add_argument('--method', default='ltkd', help='distillation method of the throughput part (logit inputs only)')
    p.add_argument('--teacher', default=None, help='zoo name (default resnet32x4; smoke cnn_tiny)')
    p.add_argument('--student', default=None, help='zoo name (default resnet8x4; smoke cnn_tiny)')
    p.add_argument('--n', type=int, default=None, help='training images (default 10847, the size of CIFAR-100-LT; smoke 256)')
    p.add_argument('--n-valid', type=int, default=None, help='validation images (default 10000; smoke 64)')
    p.add_argument('--classes', type=int, default=100)
    p.add_argument('--bs', type=int, default=None, help='batch size (default 128; smoke 64)')
    p.add_argument('--reps', type=int, default=None, help='timed epochs per configuration (default 5; smoke 1)')
    p.add_argument('--channels-last', action=argparse.BooleanOptionalAction, default=None,
                   help='channels-last memory format (default: on for CUDA)')
    p.add_argument('--compile', action='store_true', help='torch.compile student and teacher (each configuration its own copies)')
    p.add_argument('--parts', default='throughput,finite,quickstart', help='comma-separated parts to run')
    p.add_argument('--quickstart-epochs', type=int, default=None, help='epochs of each quick-start fit (default 3; smoke 1)')
    p.add_argument('--strict', action='store_true', help='exit 1 when a throughput ratio is below its target')
    p.add_argument('--threads', type=int, default=None, help='torch CPU threads (smoke default 1)')
    a = p.parse_args(argv)
    a.device = torch.device(a.device or ('cuda' if torch.cuda.is_available() else 'cpu'))
    cuda = a.device.type == 'cuda'
    small = dict(teacher='cnn_tiny', student='cnn_tiny', n=256, n_valid=64, bs=64, reps=1, quickstart_epochs=1, threads=1)
    full = dict(teacher='resnet32x4', student='resnet8x4', n=10847, n_valid=10000, bs=128, reps=5, quickstart_epochs=3, threads=None)
    for k, v in (small if a.smoke else full).items():
        if getattr(a, k) is None: setattr(a, k, v)
    if a.amp is None: a.amp = 'bf16,fp16' if cuda else 'none'
    a.amp = [m.strip() for m in a.amp.split(',') if m.strip()]
    bad = [m for m in a.amp if m not in ('none', *AMP_DTYPES)]
    if bad: p.error(f'--amp takes fp16, bf16 or none, got {bad}')
    if not cuda and any(m != 'none' for m in a.amp):
        p.error("--amp fp16/bf16 needs CUDA: fastai's MixedPrecision autocasts on CUDA only (use --amp none on a CPU)")
    if a.channels_last is None: a.channels_last = cuda
    a.parts = [x.strip() for x in a.parts.split(',') if x.strip()]
    bad = [x for x in a.parts if x not in ('throughput', 'finite', 'quickstart')]
    if bad: p.error(f'unknown parts {bad}; choose from throughput, finite, quickstart')
    return a


def sync(device):
    if device.type == 'cuda': torch.cuda.synchronize(device)


def logit_context(B, C, device, counts, groups, seed=0):
    "Every logit-level input a method's loss can take, for a batch of B samples and C classes"
    g = torch.Generator().manual_seed(seed)
    cnt = torch.tensor(counts, dtype=torch.float32).clamp_min(1.)
    return dict(target=torch.randint(0, C, (B,), generator=g).to(device), groups=groups.to(device),
                log_prior=(cnt / cnt.sum()).log().to(device), class_counts=cnt.to(device), group_sums=None,
                epoch=0, pct_train=0.5)


def method_loss(spec, s, ctx, hparams):
    "The method's loss on student logits `s` with its inputs taken by name from `ctx`"
    out = spec.loss(s, **{k: ctx[k] for k in spec.inputs}, **hparams)
    return out[0] if isinstance(out, tuple) else out


# ------------------------------------------------------------------------------------------------ 1. throughput
def throughput(a, say):
    from fastai.optimizer import OptimWrapper
    from ltkd_fastai.data import arrays_lt
    from ltkd_fastai.models import get_model
    from ltkd_fastai.distill import distill_learner, get_method, method_config, teacher_logits

    dev, C = a.device, a.classes
    spec, cfg = get_method(a.method), method_config(a.method)
    if spec.loss is None or not spec.uses_teacher or set(spec.inputs) - LOGIT_INPUTS:
        raise SystemExit(f'--method {a.method!r}: the throughput part compares methods that distil teacher logits')
    x, y, xv, yv = make_data(a.n, a.n_valid, C)
    mean, std = [0.5] * 3, [0.25] * 3
    dls = arrays_lt(x, y, xv, yv, classes=list(range(C)), imb_factor=None, bs=a.bs, val_bs=a.bs, augment=False, stats=(mean, std), div=255.,
                    device=dev)
    torch.manual_seed(0)
    teacher0 = get_model(a.teacher, C).eval()
    torch.manual_seed(1)
    student0 = get_model(a.student, C)
    lr, mom, wd = 0.05, 0.9, 5e-4
    groups, counts = dls.groups, dls.class_counts
    ctx0 = logit_context(1, C, dev, counts, groups)
    m_, s_ = torch.tensor(mean, device=dev).view(1, 3, 1, 1), torch.tensor(std, device=dev).view(1, 3, 1, 1)
    fmt = torch.channels_last if a.channels_last else torch.contiguous_format
    def prep(m):
        m = m.to(dev, memory_format=fmt)
        return torch.compile(m) if a.compile else m
    say(f'throughput: {a.n} training / {a.n_valid} validation images 3x32x32, {C} classes, bs {a.bs}; '
        f'{a.teacher} -> {a.student}, method {a.method}; channels_last {a.channels_last}, compile {a.compile}; '
        f'{a.reps} timed epochs per configuration, interleaved, after one warm-up epoch')

    def plain(amp, cache):
        "A plain PyTorch epoch doing the work of `distill_learner(...).fit(1)`; returns a closure"
        student = prep(copy.deepcopy(student0))
        teacher = prep(copy.deepcopy(teacher0).requires_grad_(False).eval())
        opt = torch.optim.SGD(student.parameters(), lr=lr, momentum=mom, weight_decay=wd)
        dt = AMP_DTYPES.get(amp)
        scaler = torch.amp.GradScaler(dev.type, enabled=dt == torch.float16)
        autocast = partial(torch.autocast, dev.type, dtype=dt, enabled=dt is not None)
        table = {}
        def batch(xs, idx):
            xb = xs[idx].to(dev).float().mul_(1 / 255.).sub_(m_).div_(s_)
            return xb.contiguous(memory_format=fmt)
        def epoch():
            if cache and not table:  # once, in float32 and eval mode, as the callback's `teacher_logits`
                with torch.no_grad():
                    table['t'] = torch.cat([teacher(batch(x, torch.arange(i, min(i + a.bs, len(x))))).float()
                                            for i in range(0, len(x), a.bs)])
            student.train()
            perm, bs = torch.randperm(len(y)), a.bs
            for i in range(len(y) // bs):
                idx = perm[i * bs:(i + 1) * bs]
                xb, yb = batch(x, idx), y[idx].to(dev)
                with autocast():
                    if cache: t = table['t'][idx.to(dev)]
                    else:
                        with torch.no_grad(): t = teacher(xb)
                    s = student(xb)
                with torch.autocast(dev.type, enabled=False):
                    s, ctx = s.float(), {**ctx0, 't': t.float(), 'target': yb}
                    loss = cfg['ce_weight'] * F.cross_entropy(s, yb) if cfg['ce_weight'] else 0.
                    loss = loss + cfg['weight'] * method_loss(spec, s, ctx, cfg['hparams'])
                opt.zero_grad(set_to_none=True)
                scaler.scale(loss).backward(); scaler.step(opt); scaler.update()
            student.eval()
            correct, total = torch.zeros((), device=dev), torch.zeros((), device=dev)
            with torch.no_grad(), autocast():
                for i in range(0, len(yv), bs):
                    s, yb = student(batch(xv, torch.arange(i, min(i + bs, len(yv))))).float(), yv[i:i + bs].to(dev)
                    total += F.cross_entropy(s, yb, reduction='sum'); correct += (s.argmax(1) == yb).sum()
            return float(correct) / len(yv)
        return epoch

    def ours(amp, cache):
        opt_func = partial(OptimWrapper, opt=torch.optim.SGD, momentum=mom, weight_decay=wd)
        learn = distill_learner(dls, prep(copy.deepcopy(teacher0)), prep(copy.deepcopy(student0)), a.method,
                                cache_teacher=cache, channels_last=a.channels_last, opt_func=opt_func, lr=lr)
        if amp == 'fp16': learn.to_fp16()
        elif amp == 'bf16': learn.to_bf16()
        def epoch():
            with learn.no_bar(), learn.no_logging(): learn.fit(1, lr)
        return epoch

    ratios, n_img = {}, len(y)
    for amp in a.amp:
        configs = {'plain loop': plain(amp, False), 'distill_learner': ours(amp, False),
                   'plain loop + cache': plain(amp, True), 'distill_learner + cache': ours(amp, True)}
        names = list(configs)
        t0 = time.perf_counter()
        for f in configs.values(): f(); sync(dev)  # warm-up: cudnn autotuning, compilation, the caches' one pass
        warm = time.perf_counter() - t0
        times = {k: [] for k in names}
        for r in range(a.reps):
            for k in names[r % len(names):] + names[:r % len(names)]:
                sync(dev); t0 = time.perf_counter()
                configs[k](); sync(dev)
                times[k].append(time.perf_counter() - t0)
        for k in names:
            med = statistics.median(times[k])
            say(f'throughput [{amp}] {k:<24s} {med:8.3f} s/epoch  {n_img / med:9.0f} train img/s (epoch incl. validation; '
                f'min {min(times[k]):.3f}, max {max(times[k]):.3f})')
        say(f'throughput [{amp}] warm-up of the four configurations: {warm:.1f} s')
        paired = lambda o, m: statistics.median(p / q for p, q in zip(times[o], times[m]))
        for label, other, mine in (('distill_learner vs plain loop', 'plain loop', 'distill_learner'),
                                   ('distill_learner vs plain loop, both cached', 'plain loop + cache', 'distill_learner + cache')):
            r_ = ratios[amp, label] = paired(other, mine)
            say(f'ratio [{amp}] {label}: {r_:.3f} (target >= 0.95) {"ok" if r_ >= 0.95 else "BELOW TARGET"}')
        say(f'ratio [{amp}] cache speed-up of distill_learner: {paired("distill_learner", "distill_learner + cache"):.2f}x')
    return ratios


# -------------------------------------------------------------------------------------------------- 2. finite
def finite(a, say):
    from ltkd_fastai.distill import METHODS
    from ltkd_fastai.longtail import class_groups, long_tail_counts
    dev, C, B = a.device, a.classes, 64
    counts = long_tail_counts(500, C, 100)
    ctx = logit_context(B, C, dev, counts, class_groups(counts))
    failures = []
    for key, spec in list(METHODS.items()):                     # the registry as it is now: methods may be added
        if spec.loss is None: say(f'finite {key}: skipped (no distillation loss)'); continue
        extra = sorted(set(spec.inputs) - LOGIT_INPUTS)
        if extra: say(f'finite {key}: skipped (needs {", ".join(extra)}, not only logits)'); continue
        for name, dt in AMP_DTYPES.items():
            g = torch.Generator().manual_seed(1)
            s = (1e4 * torch.randn(B, C, generator=g)).to(dev, dt).requires_grad_()
            t = (1e4 * torch.randn(B, C, generator=g)).to(dev, dt)
            try:
                with torch.autocast(dev.type, dtype=dt):
                    loss = method_loss(spec, s, {**ctx, 't': t}, spec.defaults)
                loss.backward()
                ok = loss.dtype == torch.float32 and bool(torch.isfinite(loss)) and bool(torch.isfinite(s.grad).all())
                msg = f'loss {float(loss):.4g} ({str(loss.dtype).replace("torch.", "")}), max|grad| {float(s.grad.abs().max()):.3g}'
            except Exception as e:
                ok, msg = False, f'{type(e).__name__}: {e}'
            say(f'finite [{name}] {key}: {msg} {"ok" if ok else "FAILED"}')
            if not ok: failures.append(f'{key} {name}')
    return failures


# ---------------------------------------------------------------------------------------------- 3. quickstart
def write_cifar100_standin(root, n_train, n_test, seed=0):
    """CIFAR-100 in its python-pickle layout (`cifar-100-python/{train,test,meta}`) with learnable synthetic images:
    `n_train[c]` training and `n_test` test images of class `c`, each a class pattern (a random 4x4 colour grid, upsampled)
    plus noise. Returns the folder to put in `$LTKD_DATA`."""
    import numpy as np, pickle
    rng = np.random.default_rng(seed)
    C = len(n_train)
    protos = rng.uniform(40, 215, (C, 3, 4, 4)).repeat(8, 2).repeat(8, 3)
    def split(ns):
        y = np.repeat(np.arange(C), ns)
        x = np.concatenate([(protos[c] + rng.normal(0, 40, (n, 3, 32, 32))).clip(0, 255).astype(np.uint8)
                            for c, n in enumerate(ns)])                     # a class at a time: little memory
        return {b'data': x.reshape(len(y), 3072), b'fine_labels': y.tolist(), b'coarse_labels': (y // 5).tolist()}
    d = Path(root) / 'cifar-100-python'
    d.mkdir(parents=True, exist_ok=True)
    for name, obj in (('train', split(n_train)), ('test', split([n_test] * C)),
                      ('meta', {b'fine_label_names': [f'class{c:02d}'.encode() for c in range(C)],
                                b'coarse_label_names': [f'super{c:02d}'.encode() for c in range(C // 5)]})):
        with open(d / name, 'wb') as f: pickle.dump(obj, f)
    return Path(root)


def notebook_cells(path):
    "(index, source) of the code cells of a notebook that `nbdev_test` runs (no `download`/`slow` flag, no `eval: false`)"
    nb = json.loads(Path(path).read_text(encoding='utf-8'))
    for i, c in enumerate(nb['cells']):
        if c['cell_type'] != 'code': continue
        src = ''.join(c['source'])
        opts = [l[3:].strip() for l in src.splitlines() if l.startswith('#| ')]
        if 'download' in opts or 'slow' in opts or any(o.replace(' ', '') == 'eval:false' for o in opts): continue
        yield i, src


def quickstart(a, say):
    import matplotlib
    matplotlib.use('Agg')
    from ltkd_fastai.longtail import long_tail_counts
    nb = ROOT / 'nbs' / 'tutorials' / 'quickstart.ipynb'
    # smoke: 10 images in the largest class and gamma = 10 (the smallest has one), 390 training images in all
    n_train = long_tail_counts(10, 100, 10) if a.smoke else [500] * 100
    n_test = 2 if a.smoke else 100
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        write_cifar100_standin(tmp, n_train, n_test)
        say(f'quickstart: stand-in CIFAR-100 ({sum(n_train)} training, {100 * n_test} test images) written in '
            f'{time.perf_counter() - t0:.1f} s; running {nb.relative_to(ROOT)}, GPU branch, '
            f'{a.quickstart_epochs} epoch(s) per fit')
        old = os.environ.get('LTKD_DATA')
        os.environ['LTKD_DATA'] = tmp
        ns = {'__name__': '__quickstart__'}
        try:
            for i, src in notebook_cells(nb):
                gpu_cell = src.startswith('#| gpu') or '\n#| gpu' in src
                if gpu_cell and a.device.type != 'cuda':   # smoke: take the GPU branch on the CPU
                    src = src.replace('torch.cuda.is_available()', 'True')
                t1 = time.perf_counter()
                exec(compile(src, f'{nb.name} cell {i}', 'exec'), ns)
                if gpu_cell:                                 # the reduced budget
                    ns['epochs'] = a.quickstart_epochs
                    if a.smoke: ns.update(imb=10, teacher_arch='cnn_tiny', student_arch='cnn_tiny', bs=32)
                    say(f"quickstart: settings {ns['dataset']}, imb {ns['imb']}, {ns['teacher_arch']} -> "
                        f"{ns['student_arch']}, {ns['epochs']} epochs, bs {ns['bs']}, schedule {ns['schedule']}")
                dt = time.perf_counter() - t1
                if dt > 1: say(f'quickstart: cell {i} took {dt:.1f} s')
        finally:
            if old is None: os.environ.pop('LTKD_DATA', None)
            else: os.environ['LTKD_DATA'] = old
        assert ns.get('dataset') == 'cifar100', 'the quick start did not take its GPU branch'
        acc = ns['acc']
        for line in acc.round(2).to_string().splitlines(): say(f'quickstart: {line}')
        say(f'quickstart: ok in {time.perf_counter() - t0:.1f} s')
        return acc


def main(argv=None):
    a = parse_args(argv)
    if a.threads: torch.set_num_threads(a.threads)
    warnings.filterwarnings('ignore')
    os.environ.setdefault('MPLBACKEND', 'Agg')
    import fastai, ltkd_fastai
    import ltkd_fastai.all  # noqa: F401  (every module, so every registered method)
    out = []
    def say(line):
        print(line, flush=True); out.append(line)
    dev = a.device
    name = torch.cuda.get_device_name(dev) if dev.type == 'cuda' else f'{torch.get_num_threads()} CPU threads'
    say(f'gpu_check: device {dev} ({name}), torch {torch.__version__}, fastai {fastai.__version__}, '
        f'ltkd_fastai {ltkd_fastai.__version__}; parts {", ".join(a.parts)}{"; smoke" if a.smoke else ""}')
    t0, problems = time.perf_counter(), []
    if 'throughput' in a.parts:
        ratios = throughput(a, say)
        if a.strict: problems += [f'ratio {k[0]} {k[1]}' for k, v in ratios.items() if v < 0.95]
    if 'finite' in a.parts: problems += [f'not finite: {f}' for f in finite(a, say)]
    if 'quickstart' in a.parts:
        try: quickstart(a, say)
        except Exception as e:
            import traceback; traceback.print_exc()
            say(f'quickstart: FAILED {type(e).__name__}: {e}'); problems.append('quickstart')
    say(f'gpu_check: {"ok" if not problems else "FAILED (" + "; ".join(problems) + ")"} in {time.perf_counter() - t0:.0f} s')
    return 1 if problems else 0


if __name__ == '__main__':
    sys.exit(main())
