"""The long-tailed distillation leaderboard of ltkd_fastai (issue 13): every long-tailed method on two real datasets.

    python benchmarks/run_leaderboard.py digits              # digits-LT, 4 settings (gamma 10/100 x label/random order)
    python benchmarks/run_leaderboard.py fashion 100 random  # one Fashion-MNIST-LT setting (settings can run in parallel)
    python benchmarks/run_leaderboard.py fashion             # the 4 Fashion-MNIST-LT settings
    python benchmarks/run_leaderboard.py report              # tables, the paired "what holds" table, figure -> tables.md
    python benchmarks/run_leaderboard.py explore             # digits-LT only: LTKD+LA-CE weights, DiVE's balanced teacher

Every finished run is kept in `benchmarks/results/leaderboard/<dataset>/runs.csv`, so an interrupted command resumes.
The teachers are retrained when their checkpoint (not committed: `*.pth`) is missing; their training is deterministic
on one CPU thread, so the committed teacher rows are reproduced.

Settings (the existing small CPU settings of this project):
- digits-LT: scikit-learn's digits, `cnn_small` teacher -> `cnn_tiny` student, 30 + 30 epochs (Adam, one-cycle, lr 1e-2,
  batch 64), the balanced test set; the runner's embedded preset.
- Fashion-MNIST-LT: Debian's `dataset-fashion-mnist`, n_max = 500 images in the largest class, `resnet8` teacher (40 epochs)
  -> `cnn_tiny` student (20 epochs), no augmentation (cached teacher logits), the balanced 10,000-image test set.
- seeds 0, 1, 2 for the students; one teacher per setting (seed 0); 1 CPU thread per process.
"""
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from ltkd_fastai.experiment import run_experiment, load_runs, format_table, posthoc_rows, row_label, summarize

OUT = Path(__file__).parent / 'results' / 'leaderboard'
METHODS = ['ce', 'la', 'kd', 'dkd', 'dist', 'bkd', 'dive', 'la_kd', 'ltkd', 'ltkd_ema', 'ltkd_dataset', 'ltkd_la', 'ltkd_adj']
POSTHOC = ['teacher', 'ce', 'kd', 'ltkd']          # rows re-evaluated with post-hoc logit adjustment (no extra training)
SEEDS = [0, 1, 2]
SETTINGS = [(10, 'label'), (10, 'random'), (100, 'label'), (100, 'random')]
DATASETS = {
    'digits': dict(dataset='digits', threads=1),
    'fashion_mnist': dict(dataset='fashion_mnist', teacher='resnet8', student='cnn_tiny', teacher_epochs=40, epochs=20,
                          bs=64, lr=1e-2, threads=1, data_kwargs=dict(n_max=500, augment=False)),
}
REFS = ['la', 'ltkd']                               # the goal: beat both on All and on Tail in every setting
COLS = ['head', 'medium', 'tail', 'all']


def tag(imb, order): return f'imb{imb}_{order}'


def run(name, imb=None, order=None):
    for imb_, order_ in SETTINGS:
        if imb is not None and (int(imb), order) != (imb_, order_): continue
        run_experiment(imb=imb_, class_order=order_, methods=METHODS, seeds=SEEDS, tag=tag(imb_, order_),
                       posthoc=POSTHOC, figures=False, out=OUT / name, **DATASETS[name])


# What was tried after the leaderboard, on digits-LT (minutes): is there a weighting of LTKD + LA-CE that keeps LA-CE's
# tail (the teacher terms at lower weight, or within-group only), and does a balanced-softmax teacher (DiVE's) help?
EXPLORE_VARIANTS = {'ltkd_la_w1': ('ltkd_la', dict(alpha=0., beta=1.)), 'ltkd_la_w3': ('ltkd_la', dict(alpha=0., beta=3.)),
                    'ltkd_la_c1w1': ('ltkd_la', dict(alpha=1., beta=1.))}
EXPLORE_LABELS = {'ltkd_la_w1': 'LTKD + LA-CE (alpha 0, beta 1)', 'ltkd_la_w3': 'LTKD + LA-CE (alpha 0, beta 3)',
                  'ltkd_la_c1w1': 'LTKD + LA-CE (alpha 1, beta 1)'}


def explore():
    from ltkd_fastai import experiment as E
    E.VARIANTS.update(EXPLORE_VARIANTS); E.ROW_LABELS.update(EXPLORE_LABELS)
    for imb, order in [(100, 'label'), (100, 'random'), (10, 'label'), (10, 'random')]:
        base = dict(imb=imb, class_order=order, seeds=SEEDS, figures=False, quiet=True, **DATASETS['digits'])
        run_experiment(methods=['la', 'ltkd'] + list(EXPLORE_VARIANTS), tag=tag(imb, order), out=OUT / 'explore' / 'digits', **base)
        run_experiment(methods=['la', 'kd', 'ltkd', 'ltkd_la', 'dive', 'la_kd'], teacher_loss='balanced_softmax', posthoc=True,
                       tag=f'bs_{tag(imb, order)}', out=OUT / 'explore' / 'digits_bs', **base)


def _per_seed(runs, method, col):
    r = runs[runs['method'] == method].drop_duplicates('seed', keep='last').set_index('seed')[col]
    return r


def what_holds(runs:pd.DataFrame, candidates, refs=REFS):
    "Paired differences (same seed) of each candidate against each reference on Tail and All: mean, and whether it exceeds the seed spread"
    rows = []
    for m in candidates:
        for ref in refs:
            if m == ref: continue
            for col in ('tail', 'all'):
                a, b = _per_seed(runs, m, col), _per_seed(runs, ref, col)
                common = a.index.intersection(b.index)
                if not len(common): continue
                d = (a[common] - b[common]).to_numpy()
                spread = max(a[common].std(ddof=1), b[common].std(ddof=1)) if len(common) > 1 else float('nan')
                rows.append(dict(method=m, ref=ref, col=col, diff=d.mean(), diff_std=d.std(ddof=1) if len(d) > 1 else 0.,
                                 spread=spread, n=len(d), holds=bool(d.mean() > spread)))
    return pd.DataFrame(rows)


def _fig(all_runs, path):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    names = list(all_runs)
    fig, axs = plt.subplots(len(names), len(SETTINGS), figsize=(4.2 * len(SETTINGS), 4.6 * len(names)), squeeze=False)
    for i, name in enumerate(names):
        runs = all_runs[name]
        for j, (imb, order) in enumerate(SETTINGS):
            ax = axs[i, j]
            r = runs[runs['tag'] == tag(imb, order)]
            if not len(r): ax.set_axis_off(); continue
            keys = [k for k in ['teacher'] + [m + s for m in METHODS for s in ('', '+ph')] if k in set(r['method'])]
            s = summarize(r, order=keys)
            y = np.arange(len(s))
            for k, (col, c) in enumerate((('all', 'tab:blue'), ('tail', 'tab:red'))):
                ax.barh(y + (k - .5) * .38, s[(col, 'mean')], .38, xerr=s[(col, 'std')], color=c, label=col.capitalize())
            ax.set_yticks(y, s.index, fontsize=7); ax.invert_yaxis(); ax.set_xlim(0, 100)
            ax.set_title(f'{name}-LT, gamma {imb}, {order} order', fontsize=9)
            if i == 0 and j == 0: ax.legend(fontsize=7, loc='lower right')
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def report():
    lines = ['# The long-tailed distillation leaderboard', '',
             'Generated by `python benchmarks/run_leaderboard.py report` from the `runs.csv` files next to it; see the',
             'docstring of `benchmarks/run_leaderboard.py` for the settings and the commands that produced them.', '']
    all_runs, holds, per_setting = {}, [], []
    for name in DATASETS:
        runs = load_runs(OUT / name)
        if not len(runs): continue
        all_runs[name] = runs = posthoc_rows(runs, POSTHOC)
        for imb, order in SETTINGS:
            r = runs[runs['tag'] == tag(imb, order)]
            if not len(r): continue
            keys = [k for k in ['teacher'] + [m + s for m in METHODS for s in ('', '+ph')] if k in set(r['method'])]
            per_setting += [format_table(r, 'markdown', order=keys, title=f'### {name}-LT, gamma {imb}, class order {order}'), '']
            h = what_holds(r, [m for m in keys if m not in ('teacher', 'teacher+ph')])
            if len(h): holds.append(h.assign(dataset=name, setting=f'gamma {imb}, {order}'))
    if all_runs:   # one compact table per column: every method in every setting
        sets = [(n, imb, order) for n in all_runs for imb, order in SETTINGS if (all_runs[n]['tag'] == tag(imb, order)).any()]
        keys = [k for k in ['teacher', 'teacher+ph'] + [m + s for m in METHODS for s in ('', '+ph')]
                if any((r['method'] == k).any() for r in all_runs.values())]
        for col in ('all', 'tail'):
            head = ['Method'] + [f"{n.split('_')[0]} γ{imb} {order}" for n, imb, order in sets]
            lines += [f'## Summary: {col.capitalize()} accuracy (%), mean ± std over 3 seeds', '',
                      '| ' + ' | '.join(head) + ' |', '|:---|' + '---:|' * len(sets)]
            for k in keys:
                cells = []
                for n, imb, order in sets:
                    r = all_runs[n]
                    v = r[(r['tag'] == tag(imb, order)) & (r['method'] == k)][col]
                    cells.append('' if not len(v) else f'{v.mean():.1f}' if len(v) == 1 else f'{v.mean():.1f} ± {v.std(ddof=1):.1f}')
                lines.append(f'| {row_label(k)} | ' + ' | '.join(cells) + ' |')
            lines.append('')
    if holds:
        h = pd.concat(holds, ignore_index=True)
        h.to_csv(OUT / 'what_holds.csv', index=False)
        lines += ['## What holds: paired differences against LA-CE and LTKD', '',
                  'For each method, the mean over seeds of (method − reference) on the same seed, in points; `✓` when it',
                  'exceeds the seed spread (the larger of the two methods\' standard deviations over seeds). A method meets',
                  "the issue's goal when all 16 cells of its row (2 datasets × 4 settings × Tail/All, against LA-CE and LTKD) are ✓.", '']
        cols = [(ds, st, c) for ds in DATASETS for st in dict.fromkeys(h['setting']) for c in ('tail', 'all')
                if ((h['dataset'] == ds) & (h['setting'] == st) & (h['col'] == c)).any()]
        head = ['Method', 'holds'] + [f"{ds.split('_')[0]} {st} {c.capitalize()}" for ds, st, c in cols]
        for ref in REFS:
            hr = h[h['ref'] == ref]
            rows = []
            for m in dict.fromkeys(hr['method']):
                hm = hr[hr['method'] == m].set_index(['dataset', 'setting', 'col'])
                cells = [f"{hm.loc[k, 'diff']:+.1f}{' ✓' if hm.loc[k, 'holds'] else ''}" if k in hm.index else '' for k in cols]
                rows.append([row_label(m), f"{int(hm['holds'].sum())}/{len(hm)}"] + cells)
            lines += [f'Against {row_label(ref)}:', '', '| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
            lines += ['| ' + ' | '.join(r) + ' |' for r in rows] + ['']
        _fig(all_runs, OUT / 'leaderboard.png')
        lines += ['![Tail and All accuracy per method and setting](leaderboard.png)', '']
    lines += ['## Each setting', ''] + per_setting
    ex = OUT / 'explore'
    if (ex / 'digits' / 'runs.csv').exists() or (ex / 'digits_bs' / 'runs.csv').exists():
        from ltkd_fastai import experiment as E
        E.ROW_LABELS.update(EXPLORE_LABELS)
        lines += ['## Exploration on digits-LT (`python benchmarks/run_leaderboard.py explore`)', '']
        for sub, what in (('digits', 'CE teacher: LTKD + LA-CE at lower teacher weights'),
                          ('digits_bs', "DiVE's balanced-softmax teacher")):
            runs = load_runs(ex / sub)
            if not len(runs): continue
            runs = posthoc_rows(runs, ['teacher'])
            for imb, order in SETTINGS:
                t = tag(imb, order) if sub == 'digits' else f'bs_{tag(imb, order)}'
                r = runs[runs['tag'] == t]
                if not len(r): continue
                keys = [k for k in ['teacher', 'teacher+ph', 'la', 'kd', 'ltkd', 'ltkd_la', 'dive', 'la_kd'] + list(EXPLORE_VARIANTS)
                        if k in set(r['method'])]
                lines += [format_table(r, 'markdown', order=keys, title=f'### {what}; gamma {imb}, {order} order'), '']
    (OUT / 'tables.md').write_text('\n'.join(lines) + '\n')
    print('\n'.join(lines))


if __name__ == '__main__':
    cmd = sys.argv[1] if len(sys.argv) > 1 else 'report'
    if cmd == 'digits': run('digits', *sys.argv[2:4])
    elif cmd == 'fashion': run('fashion_mnist', *sys.argv[2:4])
    elif cmd == 'report': report()
    elif cmd == 'explore': explore()
    else: sys.exit(__doc__)
