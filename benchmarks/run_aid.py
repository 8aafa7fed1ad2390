"""AID benchmark on a CPU: does adapting the teacher (`ltkd_fastai.aid.adapt_teacher`) shrink the capacity gap?

    OMP_NUM_THREADS=1 python benchmarks/run_aid.py digits    # digits-LT: teacher sizes, strength sweep, methods +/- AID
    OMP_NUM_THREADS=1 python benchmarks/run_aid.py fashion   # Fashion-MNIST-LT (Debian's dataset-fashion-mnist): teacher sizes
    OMP_NUM_THREADS=1 python benchmarks/run_aid.py digits_bal    # the same on balanced splits of the same size (the paper's case)
    OMP_NUM_THREADS=1 python benchmarks/run_aid.py fashion_bal
    python benchmarks/run_aid.py report                      # tables and figures -> benchmarks/results/aid/

Every finished run is appended to benchmarks/results/aid/runs.csv (teachers and their adaptation to teachers.csv), so an
interrupted command resumes where it stopped. Trained models are cached in $LTKD_AID_CACHE (default: the system's temp
folder), never in the repository.

Setting (sized so that both datasets take about 20 minutes of one CPU thread):
- student cnn_tiny (6k parameters) throughout; teachers of increasing size cnn_tiny (6k), resnet8 (78k),
  resnet14 (175k), cnn_small (288k) on digits-LT, resnet8 and resnet14 on Fashion-MNIST-LT;
- digits-LT: gamma 10 (124 ... 12 images per class, 503 in all), its random-crop augmentation, the 500-image balanced
  test set; teachers 30 epochs, students 20 epochs;
- Fashion-MNIST-LT: gamma 100 with 300 images in the largest class (740 in all), no augmentation (the teacher's logits
  are cached), 1,000 test images (100 per class, a fixed subset of the balanced test set); teachers 25 epochs,
  students 15 epochs;
- Adam + one-cycle (`fit_one_cycle`), lr 1e-2, batch 64, one thread; the teacher is trained once (seed 0), students
  with seeds 0, 1, 2; KD with the registry's defaults (T = 4, 0.1 CE + 0.9 KD);
- AID: the capacity reference is the seed-0 CE student; `adapt_teacher(teacher, dls, student, strength)` with its
  defaults (5 epochs of `fit_one_cycle`, lr 2e-3, T = 4); strength 1 for every teacher, and 0.5, 2, 5 for cnn_small on
  digits (strength 0 is the plain teacher);
- digits-LT, cnn_small teacher: DKD, DIST and LTKD with and without AID (the same adapted teacher), 3 seeds.
"""
import csv, os, sys, tempfile, time, warnings
from pathlib import Path

import numpy as np, pandas as pd, torch

OUT = Path(__file__).parent / 'results' / 'aid'
CACHE = Path(os.environ.get('LTKD_AID_CACHE', Path(tempfile.gettempdir()) / 'ltkd_aid_bench'))
SEEDS = [0, 1, 2]
STUDENT = 'cnn_tiny'
CONFIG = {
    'digits': dict(teachers=['cnn_tiny', 'resnet8', 'resnet14', 'cnn_small'], teacher_epochs=30, epochs=20,
                   strengths={'cnn_small': [0.5, 1., 2., 5.]}, methods=['dkd', 'dist', 'ltkd'], methods_teacher='cnn_small',
                   control='cnn_small'),
    'fashion': dict(teachers=['resnet8', 'resnet14'], teacher_epochs=25, epochs=15, strengths={}, methods=[],
                    methods_teacher=None, control='resnet8'),
}
# The paper's setting is balanced: the same sweeps on balanced splits of the same size (digits 50 x 10 = 500 images,
# Fashion-MNIST 74 x 10 = 740), the same test sets, teachers and schedules
CONFIG['digits_bal'] = dict(CONFIG['digits'], methods=[], methods_teacher=None, control=None)
CONFIG['fashion_bal'] = dict(CONFIG['fashion'], control=None)
LR, BS, AID_STRENGTH = 1e-2, 64, 1.
RUN_COLS = ['key', 'dataset', 'part', 'teacher', 'method', 'aid', 'strength', 'seed', 'head', 'medium', 'tail', 'all',
            'time_s', 'epochs']
TEACHER_COLS = ['key', 'dataset', 'teacher', 'params', 'strength', 'acc', 'cw', 'ic', 'train_s', 'adapt_s',
                'head', 'medium', 'tail']


def build_dls(dataset):
    from ltkd_fastai.data import digits_lt, arrays_lt, find_fashion_mnist, read_fashion_mnist, FASHION_MNIST_STATS
    if dataset == 'digits': return digits_lt(imb_factor=10, bs=BS, seed=0)
    if dataset == 'digits_bal': return digits_lt(imb_factor=1., n_max=50, bs=BS, seed=0)
    x_tr, y_tr, x_te, y_te, classes = read_fashion_mnist(find_fashion_mnist(download=False))
    rng = np.random.RandomState(0)
    keep = np.sort(np.concatenate([rng.permutation(np.nonzero(y_te == c)[0])[:100] for c in range(10)]))
    imb, n_max = (1., 74) if dataset == 'fashion_bal' else (100, 300)
    return arrays_lt(x_tr, y_tr, x_te[keep], y_te[keep], classes, imb_factor=imb, n_max=n_max, bs=BS, seed=0,
                     stats=FASHION_MNIST_STATS, augment=False, source='fashion-mnist (Debian)')


def _rows(path):
    if not path.exists(): return {}
    with open(path, newline='') as f: return {r['key']: r for r in csv.DictReader(f)}


def _append(path, cols, row):
    new = not path.exists()
    with open(path, 'a', newline='') as f:
        w = csv.DictWriter(f, fieldnames=cols)
        if new: w.writeheader()
        w.writerow({c: row.get(c) for c in cols})


def _seed(seed, dls):
    import random
    from fastai.torch_core import set_seed
    set_seed(seed, reproducible=True)
    for dl in dls.loaders: dl.rng = random.Random(seed)


class _NoValidation:
    "Skip fastai's per-epoch validation: each model is scored once, after training"
    def __new__(cls):
        from fastai.callback.core import Callback, CancelValidException
        class NoValidation(Callback):
            def before_validate(self): raise CancelValidException()
        return NoValidation()


def _fit(learn, epochs, lr=LR):
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(epochs, lr, cbs=[_NoValidation()])
    return learn.model.eval()


def _ce_model(dls, arch, epochs, seed):
    "A model trained with plain CE, cached by (dataset, arch, epochs, seed)"
    from fastai.learner import Learner
    from fastai.losses import CrossEntropyLossFlat
    from ltkd_fastai.models import get_model
    from ltkd_fastai.checkpoints import save_teacher, load_teacher
    p = CACHE / f'{dls.tag}_{arch}_ce{epochs}_s{seed}.pth'
    if p.exists(): return load_teacher(p), 0.
    t0 = time.time()
    _seed(seed, dls)
    model = _fit(Learner(dls, get_model(arch, 10, in_chans=1), loss_func=CrossEntropyLossFlat()), epochs)
    dt = time.time() - t0
    save_teacher(model, p, arch=arch)
    return model, dt


def _adapted(dls, teacher, arch, reference, strength, epochs):
    "`adapt_teacher(teacher, dls, reference, strength)`, cached; (model, seconds)"
    from ltkd_fastai.aid import adapt_teacher
    from ltkd_fastai.checkpoints import save_teacher, load_teacher
    p = CACHE / f'{dls.tag}_{arch}_ce{epochs}_aid{strength:g}.pth'
    if p.exists(): return load_teacher(p), 0.
    _seed(0, dls)
    t0 = time.time()
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        model, learn = adapt_teacher(teacher, dls, reference, strength=strength, with_learner=True)
    dt = time.time() - t0
    save_teacher(model, p, arch=arch)
    return model, dt


def _ce_finetuned(dls, teacher, arch, reference, epochs):
    "The control: the teacher fine-tuned exactly as `adapt_teacher` does it, with strength 0 (CE only); cached"
    from ltkd_fastai.aid import aid_learner
    from ltkd_fastai.checkpoints import save_teacher, load_teacher
    p = CACHE / f'{dls.tag}_{arch}_ce{epochs}_ceft.pth'
    if p.exists(): return load_teacher(p), 0.
    _seed(0, dls)
    t0 = time.time()
    learn = aid_learner(teacher, dls, reference, strength=0.)
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(5, 2e-3)   # `adapt_teacher`'s defaults
    model = learn.model.eval()
    dt = time.time() - t0
    save_teacher(model, p, arch=arch)
    return model, dt


def _scores(dls, model, reference):
    "Accuracy per group and the whole validation set's KD split (model -> reference)"
    from ltkd_fastai.experiment import evaluate_groups
    from ltkd_fastai.aid import aid_class_report
    acc = evaluate_groups(model, dls.valid, dls.groups)
    g = aid_class_report(model, reference, dls, by='group')
    return dict(acc=acc['all'], head=acc['head'], medium=acc['medium'], tail=acc['tail'],
                cw=g.loc['all', 'class_wise'], ic=g.loc['all', 'inner_class'])


def run(dataset):
    from ltkd_fastai.models import count_params
    from ltkd_fastai.distill import distill_learner, random_augmentations
    from ltkd_fastai.experiment import evaluate_groups
    torch.set_num_threads(1)
    OUT.mkdir(parents=True, exist_ok=True); CACHE.mkdir(parents=True, exist_ok=True)
    cfg = CONFIG[dataset]
    dls = build_dls(dataset)
    dls.tag = dataset
    cache = not random_augmentations(dls.train)
    E, TE = cfg['epochs'], cfg['teacher_epochs']
    runs_csv, teachers_csv = OUT / 'runs.csv', OUT / 'teachers.csv'
    done, tdone = _rows(runs_csv), _rows(teachers_csv)
    say = lambda *a: print(*a, flush=True)
    say(f'{dataset}: {len(dls.train_ds)} training images {dls.class_counts}, {len(dls.valid_ds)} test images')

    def student_run(part, teacher_arch, tmodel, method, strength, seed):
        key = f'{dataset}|{teacher_arch}|{method}|{strength:g}|{seed}|{E}'
        if key in done: return
        from ltkd_fastai.models import get_model
        t0 = time.time()
        _seed(seed, dls)
        if method == 'ce': learn_model, _ = _ce_model(dls, STUDENT, E, seed)
        else:
            learn = distill_learner(dls, tmodel, get_model(STUDENT, 10, in_chans=1), method=method, metrics=[],
                                    cache_teacher=cache, **({'warmup': max(1, round(20 * E / 240))} if method == 'dkd' else {}))
            learn_model = _fit(learn, E)
        acc = evaluate_groups(learn_model, dls.valid, dls.groups)
        row = dict(key=key, dataset=dataset, part=part, teacher=teacher_arch, method=method, aid=strength > 0,
                   strength=strength, seed=seed, time_s=round(time.time() - t0, 2), epochs=E, **acc)
        _append(runs_csv, RUN_COLS, row); done[key] = row
        say(f"  {part:8s} {teacher_arch:9s} {method:5s} strength {strength:<4g} seed {seed}: all {acc['all']:.1f} "
            f"tail {acc['tail']:.1f} ({row['time_s']:.0f} s)")

    # CE students: the baseline rows, and seed 0 is AID's capacity reference
    for s in SEEDS: student_run('ce', '-', None, 'ce', 0., s)
    reference, _ = _ce_model(dls, STUDENT, E, 0)
    for arch in cfg['teachers']:
        tmodel, tsec = _ce_model(dls, arch, TE, 0)
        strengths = cfg['strengths'].get(arch, [AID_STRENGTH])
        models = {0.: tmodel}
        for st in [0.] + strengths:
            key = f'{dataset}|{arch}|{st:g}|{TE}'
            if st: models[st], asec = _adapted(dls, tmodel, arch, reference, st, TE)
            if key not in tdone:
                sc = _scores(dls, models[st], reference)
                row = dict(key=key, dataset=dataset, teacher=arch, params=count_params(tmodel), strength=st,
                           train_s=round(tsec, 2) if not st else None, adapt_s=round(asec, 2) if st else None, **sc)
                _append(teachers_csv, TEACHER_COLS, row); tdone[key] = row
                say(f"  teacher {arch} strength {st:g}: accuracy {sc['acc']:.1f}, KD into the CE student: "
                    f"class-wise {sc['cw']:.3f}, inner-class {sc['ic']:.3f}")
        for st in [0., AID_STRENGTH]:
            for s in SEEDS: student_run('size', arch, models[st], 'kd', st, s)
        for st in strengths:
            if st == AID_STRENGTH: continue
            for s in SEEDS: student_run('strength', arch, models[st], 'kd', st, s)
        if arch == cfg.get('control'):       # CE fine-tuning with AID's schedule: is it the adaptation or the extra epochs?
            name = f'{arch}+ce-ft'
            cmodel, csec = _ce_finetuned(dls, tmodel, arch, reference, TE)
            key = f'{dataset}|{name}|0|{TE}'
            if key not in tdone:
                sc = _scores(dls, cmodel, reference)
                row = dict(key=key, dataset=dataset, teacher=name, params=count_params(tmodel), strength=0., adapt_s=round(csec, 2), **sc)
                _append(teachers_csv, TEACHER_COLS, row); tdone[key] = row
                say(f"  teacher {name}: accuracy {sc['acc']:.1f}, class-wise {sc['cw']:.3f}, inner-class {sc['ic']:.3f}")
            for s in SEEDS: student_run('control', name, cmodel, 'kd', 0., s)
        if arch == cfg['methods_teacher']:
            for m in cfg['methods']:
                for st in [0., AID_STRENGTH]:
                    for s in SEEDS: student_run('methods', arch, models[st], m, st, s)


# ------------------------------------------------------------------------------------------------------ the report
def _name(ds): return ds.replace('_bal', '') + (' (balanced)' if ds.endswith('_bal') else '-LT')


def _fmt(g, col):
    m, s, n = g[col].mean(), g[col].std(ddof=1), len(g)
    return f'{m:.1f} ± {s:.1f}' if n > 1 else f'{m:.1f}'


def report():
    import matplotlib; matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    runs, teach = pd.read_csv(OUT / 'runs.csv'), pd.read_csv(OUT / 'teachers.csv')
    lines = ['# AID benchmark tables (generated by `python benchmarks/run_aid.py report`)', '',
             'Accuracy (%) on the balanced test set, mean ± std over student seeds 0, 1, 2 (the std is the noise: '
             'a difference smaller than it is not a finding). Student cnn_tiny.', '']
    # 1. teacher size: KD with and without AID
    for ds in runs['dataset'].unique():
        r, t = runs[runs['dataset'] == ds], teach[teach['dataset'] == ds]
        ce = r[r['method'] == 'ce']
        lines += [f'## {_name(ds)}: student accuracy against teacher size', '',
                  f'Student trained with CE alone: all {_fmt(ce, "all")}, tail {_fmt(ce, "tail")}.', '',
                  '| Teacher | Params | Teacher acc | AID teacher acc | Inner-class (KD into CE student) | KD all | KD + AID all | '
                  'KD tail | KD + AID tail | Δ all |', '|---|---:|---:|---:|---|---:|---:|---:|---:|---:|']
        for arch in CONFIG[ds]['teachers']:
            kd = r[(r['teacher'] == arch) & (r['method'] == 'kd') & (r['strength'] == 0)]
            ka = r[(r['teacher'] == arch) & (r['method'] == 'kd') & (r['strength'] == AID_STRENGTH)]
            t0, t1 = t[(t['teacher'] == arch) & (t['strength'] == 0)], t[(t['teacher'] == arch) & (t['strength'] == AID_STRENGTH)]
            if not len(kd) or not len(t0): continue
            d = ka['all'].mean() - kd['all'].mean() if len(ka) else float('nan')
            lines.append(f"| {arch} | {int(t0['params'].iloc[0]):,} | {t0['acc'].iloc[0]:.1f} | "
                         f"{t1['acc'].iloc[0]:.1f} | {t0['ic'].iloc[0]:.3f} → {t1['ic'].iloc[0]:.3f} | "
                         f"{_fmt(kd, 'all')} | {_fmt(ka, 'all')} | {_fmt(kd, 'tail')} | {_fmt(ka, 'tail')} | {d:+.1f} |"
                         if len(t1) else f"| {arch} | {int(t0['params'].iloc[0]):,} | {t0['acc'].iloc[0]:.1f} | | | "
                         f"{_fmt(kd, 'all')} | | {_fmt(kd, 'tail')} | | |")
        lines.append('')
    # 1b. the control: the teacher fine-tuned with CE alone on AID's schedule
    for ds in runs['dataset'].unique():
        arch = CONFIG[ds].get('control')
        if not arch: continue
        name = f'{arch}+ce-ft'
        r, t = runs[(runs['dataset'] == ds) & (runs['method'] == 'kd')], teach[teach['dataset'] == ds]
        rows = [('plain teacher', r[(r['teacher'] == arch) & (r['strength'] == 0)], t[(t['teacher'] == arch) & (t['strength'] == 0)]),
                ('CE fine-tuning, 5 epochs (control)', r[r['teacher'] == name], t[t['teacher'] == name]),
                (f'AID, strength {AID_STRENGTH:g}, 5 epochs', r[(r['teacher'] == arch) & (r['strength'] == AID_STRENGTH)],
                 t[(t['teacher'] == arch) & (t['strength'] == AID_STRENGTH)])]
        lines += [f'## {_name(ds)}: control, the teacher fine-tuned with CE alone on the same schedule ({arch} teacher, KD)', '',
                  '| Teacher | Teacher acc | Class-wise | Inner-class | KD tail | KD all |', '|---|---:|---:|---:|---:|---:|']
        for lbl, g, tt in rows:
            if len(g) and len(tt):
                lines.append(f"| {lbl} | {tt['acc'].iloc[0]:.1f} | {tt['cw'].iloc[0]:.3f} | {tt['ic'].iloc[0]:.3f} | "
                             f"{_fmt(g, 'tail')} | {_fmt(g, 'all')} |")
        lines.append('')
    # 2. strength
    st = runs[runs['method'] == 'kd']
    for ds in runs['dataset'].unique():
        sw = CONFIG[ds]['strengths']
        for arch, vals in sw.items():
            r = st[(st['dataset'] == ds) & (st['teacher'] == arch)]
            t = teach[(teach['dataset'] == ds) & (teach['teacher'] == arch)]
            lines += [f'## {_name(ds)}: strength sweep ({arch} teacher, KD)', '',
                      '| Strength | Teacher acc | Class-wise | Inner-class | KD head | KD medium | KD tail | KD all |',
                      '|---:|---:|---:|---:|---:|---:|---:|---:|']
            for v in [0.] + vals:
                g, tt = r[r['strength'] == v], t[t['strength'] == v]
                if not len(g) or not len(tt): continue
                lines.append(f"| {v:g} | {tt['acc'].iloc[0]:.1f} | {tt['cw'].iloc[0]:.3f} | {tt['ic'].iloc[0]:.3f} | "
                             f"{_fmt(g, 'head')} | {_fmt(g, 'medium')} | {_fmt(g, 'tail')} | {_fmt(g, 'all')} |")
            lines.append('')
    # 3. methods +/- AID
    for ds in runs['dataset'].unique():
        arch = CONFIG[ds]['methods_teacher']
        if arch is None: continue
        r = runs[(runs['dataset'] == ds) & (runs['teacher'].isin([arch, '-']))]
        lines += [f'## {_name(ds)}: distillation methods with and without AID ({arch} teacher, long-tailed split)', '',
                  '| Method | Head | Medium | Tail | All |', '|---|---:|---:|---:|---:|']
        rows = [('Student (CE)', r[r['method'] == 'ce'])]
        for m in ['kd'] + CONFIG[ds]['methods']:
            rows += [(m.upper(), r[(r['method'] == m) & (r['strength'] == 0)]),
                     (m.upper() + ' + AID', r[(r['method'] == m) & (r['strength'] == AID_STRENGTH)])]
        for name, g in rows:
            if len(g): lines.append(f"| {name} | {_fmt(g, 'head')} | {_fmt(g, 'medium')} | {_fmt(g, 'tail')} | {_fmt(g, 'all')} |")
        lines.append('')
    # 4. cost
    lines += ['## Cost of the adaptation', '',
              '| Dataset | Teacher | Adaptation (s) | KD run, mean (s) | Adaptation / KD run | Teacher training (s) |',
              '|---|---|---:|---:|---:|---:|']
    for _, t in teach[(teach['strength'] == AID_STRENGTH)].iterrows():
        kd = runs[(runs['dataset'] == t['dataset']) & (runs['teacher'] == t['teacher']) & (runs['method'] == 'kd')
                  & (runs['strength'] == 0)]
        t0 = teach[(teach['dataset'] == t['dataset']) & (teach['teacher'] == t['teacher']) & (teach['strength'] == 0)]
        if not len(kd) or pd.isna(t['adapt_s']) or not t['adapt_s']: continue
        lines.append(f"| {t['dataset']} | {t['teacher']} | {t['adapt_s']:.1f} | {kd['time_s'].mean():.1f} | "
                     f"{t['adapt_s'] / kd['time_s'].mean():.2f} | {t0['train_s'].iloc[0]:.1f} |")
    lines.append('')
    (OUT / 'tables.md').write_text('\n'.join(lines))
    # figures: student accuracy against teacher size
    dss = list(runs['dataset'].unique())
    fig, axs = plt.subplots(1, len(dss), figsize=(5.5 * len(dss), 4), squeeze=False)
    for ax, ds in zip(axs[0], dss):
        r, t = runs[(runs['dataset'] == ds) & (runs['method'] == 'kd')], teach[teach['dataset'] == ds]
        archs = [a for a in CONFIG[ds]['teachers'] if a in set(r['teacher'])]
        params = [int(t[(t['teacher'] == a) & (t['strength'] == 0)]['params'].iloc[0]) for a in archs]
        x = list(range(len(archs)))                                   # teachers in order of size, evenly spaced
        for v, lbl, c in [(0., 'KD', 'C0'), (AID_STRENGTH, 'KD + AID', 'C1')]:
            g = [r[(r['teacher'] == a) & (r['strength'] == v)]['all'] for a in archs]
            ax.errorbar(x, [q.mean() for q in g], [q.std(ddof=1) for q in g], marker='o', capsize=3, label=lbl, color=c)
        ce = runs[(runs['dataset'] == ds) & (runs['method'] == 'ce')]['all']
        ax.axhspan(ce.mean() - ce.std(ddof=1), ce.mean() + ce.std(ddof=1), color='grey', alpha=0.2, label='CE student ± std')
        ax.set_xticks(x); ax.set_xticklabels([f'{a}\n{p / 1e3:.0f}k' for a, p in zip(archs, params)])
        ax.set_xlim(-0.5, len(x) - 0.5)
        ax.set_xlabel('teacher (parameters)'); ax.set_ylabel('student accuracy, all (%)')
        ax.set_title(f'{_name(ds)}: cnn_tiny student, mean ± std over 3 seeds'); ax.legend(fontsize=8)
    fig.tight_layout(); fig.savefig(OUT / 'teacher_size.png', dpi=110); plt.close(fig)
    # strength sweep
    for ds in dss:
        for arch, vals in CONFIG[ds]['strengths'].items():
            r = runs[(runs['dataset'] == ds) & (runs['teacher'] == arch) & (runs['method'] == 'kd')]
            t = teach[(teach['dataset'] == ds) & (teach['teacher'] == arch)].sort_values('strength')
            xs = [v for v in [0.] + vals if v in set(r['strength'])]
            if len(xs) < 2: continue
            fig, axs = plt.subplots(1, 2, figsize=(11, 3.8))
            for col, c in [('all', 'C0'), ('tail', 'C3')]:
                g = [r[r['strength'] == v][col] for v in xs]
                axs[0].errorbar(range(len(xs)), [q.mean() for q in g], [q.std(ddof=1) for q in g], marker='o', capsize=3,
                                label=f'KD student, {col}', color=c)
            axs[0].set_xticks(range(len(xs))); axs[0].set_xticklabels([f'{v:g}' for v in xs])
            axs[0].set_xlabel('AID strength (0: plain teacher)'); axs[0].set_ylabel('student accuracy (%)')
            axs[0].set_title(f'{_name(ds)}, {arch} -> cnn_tiny (3 seeds)'); axs[0].legend(fontsize=8)
            tt = t.set_index('strength').loc[xs]
            axs[1].plot(range(len(xs)), tt['ic'], 'o-', label='inner-class', color='C1')
            axs[1].plot(range(len(xs)), tt['cw'], 's-', label='class-wise', color='C2')
            axs[1].set_ylabel('KD into the CE student (validation)')
            ax2 = axs[1].twinx(); ax2.plot(range(len(xs)), tt['acc'], 'k^--', label='teacher accuracy'); ax2.set_ylabel('teacher accuracy (%)')
            axs[1].set_xticks(range(len(xs))); axs[1].set_xticklabels([f'{v:g}' for v in xs]); axs[1].set_xlabel('AID strength')
            h1, l1 = axs[1].get_legend_handles_labels(); h2, l2 = ax2.get_legend_handles_labels()
            axs[1].set_title('the adapted teacher'); ax2.legend(h1 + h2, l1 + l2, loc='center right', fontsize=8)
            fig.tight_layout(); fig.savefig(OUT / f'strength_{ds}.png', dpi=110); plt.close(fig)
    # methods +/- AID
    from ltkd_fastai.plots import plot_group_accuracy
    for ds in dss:
        arch = CONFIG[ds]['methods_teacher']
        if arch is None: continue
        r = runs[(runs['dataset'] == ds) & (runs['teacher'] == arch)]
        acc, err = {}, {}
        for m in ['kd'] + CONFIG[ds]['methods']:
            for v, suf in [(0., ''), (AID_STRENGTH, ' + AID')]:
                g = r[(r['method'] == m) & (r['strength'] == v)]
                if len(g):
                    acc[m.upper() + suf] = {c.capitalize(): g[c].mean() for c in ['head', 'medium', 'tail', 'all']}
                    err[m.upper() + suf] = {c.capitalize(): g[c].std(ddof=1) for c in ['head', 'medium', 'tail', 'all']}
        if not acc: continue
        fig, ax = plt.subplots(figsize=(10, 4))
        plot_group_accuracy(pd.DataFrame(acc).T, pd.DataFrame(err).T, ax=ax,
                            title=f'{_name(ds)}, {arch} -> cnn_tiny: methods with and without AID (mean ± std, 3 seeds)')
        fig.tight_layout(); fig.savefig(OUT / f'methods_{ds}.png', dpi=110); plt.close(fig)
    # where the terms sit: the largest digits teacher before / after AID, per class
    ds = 'digits'
    arch = CONFIG[ds]['methods_teacher']
    p0, p1 = CACHE / f'{ds}_{arch}_ce{CONFIG[ds]["teacher_epochs"]}_s0.pth', CACHE / f'{ds}_{arch}_ce{CONFIG[ds]["teacher_epochs"]}_aid{AID_STRENGTH:g}.pth'
    pr = CACHE / f'{ds}_{STUDENT}_ce{CONFIG[ds]["epochs"]}_s0.pth'
    if p0.exists() and p1.exists() and pr.exists():
        from ltkd_fastai.checkpoints import load_teacher
        from ltkd_fastai.aid import aid_class_report, plot_aid_report
        dls = build_dls(ds)
        ref = load_teacher(pr)
        reps = {'teacher': aid_class_report(load_teacher(p0), ref, dls), 'AID teacher': aid_class_report(load_teacher(p1), ref, dls)}
        fig, ax = plt.subplots(figsize=(10, 3.8))
        plot_aid_report(reps, ax=ax, title=f'digits-LT: KD from the {arch} teacher into the CE student, per class (test set)')
        fig.tight_layout(); fig.savefig(OUT / 'class_report_digits.png', dpi=110); plt.close(fig)
    print((OUT / 'tables.md').read_text())


if __name__ == '__main__':
    what = sys.argv[1] if len(sys.argv) > 1 else 'report'
    if what in CONFIG: run(what)
    elif what == 'report': report()
    else: sys.exit(f'usage: {sys.argv[0]} {" | ".join(CONFIG)} | report')
