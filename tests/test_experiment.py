"""The `ltkd_experiment` command and `run_experiment`: CLI runs, resume after an interruption, atomic and
concurrent result files, the table's numbers, bad arguments. Tiny settings (digits, 1 epoch) keep it fast."""
import math, multiprocessing as mp, os, re, signal, subprocess, sys, time
from pathlib import Path

import numpy as np, pandas as pd, pytest
from fastai.callback.core import Callback
from hypothesis import given, settings, strategies as st

from ltkd_fastai.experiment import (RUNS_CSV, format_table, load_runs, main, run_experiment, save_run, summarize)

TINY = ['--epochs', '1', '--teacher-epochs', '1', '--seeds', '0', '1', '--methods', 'ce', 'kd', 'ltkd']


def _cli(*args, timeout=600):
    "Run the installed console script (falls back to `python -c main()` if it is not on PATH)."
    import shutil
    exe = [shutil.which('ltkd_experiment')] if shutil.which('ltkd_experiment') else [
        sys.executable, '-c', 'from ltkd_fastai.experiment import main; main()']
    return subprocess.run(exe + list(args), capture_output=True, text=True, timeout=timeout)


def test_cli_tiny_run_prints_table_and_writes_files(tmp_path):
    out = tmp_path / 'res'
    r = _cli(*TINY, '--out', str(out))
    assert r.returncode == 0, r.stderr[-3000:]
    lines = r.stdout.splitlines()
    head = next(i for i, l in enumerate(lines) if l.startswith('Method'))
    assert lines[head].split() == ['Method', 'Head', 'Medium', 'Tail', 'All', 'Runs']
    rows = [l for l in lines[head + 2:head + 6]]
    assert [l.split('  ')[0].strip() for l in rows] == ['Teacher', 'Student (CE)', 'KD', 'LTKD']
    assert rows[1].split()[-1] == '2' and rows[0].split()[-1] == '1'          # seeds per row
    runs = pd.read_csv(out / RUNS_CSV)
    assert len(runs) == 7 and runs['key'].is_unique                            # teacher + 3 methods x 2 seeds
    assert sorted(runs['method'].unique()) == ['ce', 'kd', 'ltkd', 'teacher']
    for c in ['head', 'medium', 'tail', 'all', 'time_s', 'cpu_s']: assert runs[c].between(0, 1e5).all()
    md = (out / 'table.md').read_text()
    assert '| Method | Head | Medium | Tail | All | Runs |' in md and md.count('**') >= 8   # the best of 4 columns, bold
    assert len(list((out / 'teachers').glob('*.pth'))) == 1
    for f in ['table_group_accuracy.png', 'table_class_counts.png', 'table_teacher_group_mass.png']:
        assert (out / f).read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    assert not list(out.glob('.*.tmp'))


def test_cli_balanced_softmax_teacher_is_its_own_checkpoint(tmp_path):
    "--teacher-loss balanced_softmax trains DiVE's teacher beside the CE one (own key and file), and reuses it next time"
    args = ['--epochs', '1', '--teacher-epochs', '1', '--seeds', '0', '--methods', 'dive', '--no-figures',
            '--out', str(tmp_path)]
    for loss, says in [('ce', 'training'), ('balanced_softmax', 'training'), ('balanced_softmax', 'loaded')]:
        r = _cli(*args, '--teacher-loss', loss)
        assert r.returncode == 0, r.stderr[-3000:]
        assert f'teacher cnn_small: {says}' in r.stdout, r.stdout[-2000:]
    assert 'cnn_small (balanced_softmax teacher) -> cnn_tiny' in r.stdout
    names = sorted(p.name for p in (tmp_path / 'teachers').glob('*.pth'))
    assert len(names) == 2 and sum(n.startswith('cnn_small_balanced_softmax_') for n in names) == 1, names
    runs = pd.read_csv(tmp_path / RUNS_CSV)
    assert list(runs['method']) == ['teacher', 'dive', 'teacher', 'dive'] and runs['key'].is_unique   # students too
    with pytest.raises(ValueError, match="teacher_loss must be one of"): run_experiment(teacher_loss='focal', out=tmp_path)


class _Count(Callback):
    "Counts fits; raises KeyboardInterrupt in the `stop_at`-th fit (as Ctrl-C would), after it started"
    def __init__(self, stop_at=None): self.n, self.stop_at = 0, stop_at
    def before_fit(self): self.n += 1
    def after_batch(self):
        if self.stop_at is not None and self.n == self.stop_at: raise KeyboardInterrupt


def test_interrupted_run_resumes_without_retraining(tmp_path):
    kw = dict(methods=['ce', 'kd', 'ltkd'], seeds=[0, 1], epochs=1, teacher_epochs=1, out=tmp_path, quiet=True,
              figures=False)
    # fits: 1 teacher, then ce/0, ce/1, kd/0, ... : interrupt the 4th fit (kd seed 0)
    with pytest.raises(KeyboardInterrupt): run_experiment(cbs=[_Count(stop_at=4)], **kw)
    done = load_runs(tmp_path)
    assert list(done['method']) == ['teacher', 'ce', 'ce']
    assert not list(Path(tmp_path).glob('.*.tmp'))
    c = _Count()
    runs = run_experiment(cbs=[c], **kw)
    assert c.n == 4                                    # kd/0, kd/1, ltkd/0, ltkd/1; the teacher is loaded, not retrained
    assert len(runs) == 7 and len(load_runs(tmp_path)) == 7
    first = done.set_index('key')['all']
    assert (runs.set_index('key').loc[first.index, 'all'] == first).all()      # finished runs are reused as they were
    c = _Count()
    run_experiment(cbs=[c], **kw)
    assert c.n == 0                                    # everything done: nothing trains
    c = _Count()
    run_experiment(cbs=[c], **{**kw, 'seeds': [0, 1, 2]})
    assert c.n == 3                                    # one more seed: only the three new runs
    c = _Count()
    run_experiment(cbs=[c], **{**kw, 'methods': ['kd', 'ltkd'], 'alpha': 2.})
    assert c.n == 2                                    # alpha changes LTKD's runs, not KD's


def test_ctrl_c_exits_130_and_resumes(tmp_path):
    out = tmp_path / 'res'
    args = [sys.executable, '-c', 'from ltkd_fastai.experiment import main; main()', '--epochs', '3', '--teacher-epochs', '1',
            '--seeds', '0', '1', '2', '--methods', 'ce', 'kd', '--out', str(out), '--no-figures', '--quiet']
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    t0 = time.time()
    while time.time() - t0 < 300:
        if (out / RUNS_CSV).exists() and len(load_runs(out)) >= 2: break
        time.sleep(0.2)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=120)
    n_done = len(load_runs(out))
    if p.returncode == 0: pytest.skip('the run finished before the interrupt arrived')
    assert p.returncode == 130, err[-2000:]
    assert 'run the same command again to resume' in err
    assert 2 <= n_done < 7 and not list(out.glob('.*.tmp'))
    r = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert len(load_runs(out)) == 7


def _save_many(out, i):
    for j in range(10): save_run(out, {'key': f'{i}-{j}', 'all': float(j)})


def test_concurrent_writers_lose_no_rows(tmp_path):
    ctx = mp.get_context('fork' if 'fork' in mp.get_all_start_methods() else 'spawn')
    ps = [ctx.Process(target=_save_many, args=(str(tmp_path), i)) for i in range(3)]
    for p in ps: p.start()
    for p in ps: p.join(120)
    r = load_runs(tmp_path)
    assert sorted(r['key']) == sorted(f'{i}-{j}' for i in range(3) for j in range(10))


@settings(max_examples=30, deadline=None)
@given(st.lists(st.lists(st.floats(0, 100, allow_nan=False), min_size=4, max_size=4), min_size=1, max_size=4),
       st.lists(st.lists(st.floats(0, 100, allow_nan=False), min_size=4, max_size=4), min_size=1, max_size=4))
def test_table_numbers_match_numpy(a, b):
    cols = ['head', 'medium', 'tail', 'all']
    runs = pd.DataFrame([dict(method='kd', **dict(zip(cols, r))) for r in a] +
                        [dict(method='ltkd', **dict(zip(cols, r))) for r in b])
    md = format_table(runs).splitlines()[2:]
    for line, vals in zip(md, (np.array(a), np.array(b))):
        cells = [c.strip().strip('*') for c in line.strip('|').split('|')][1:5]
        for k, cell in enumerate(cells):
            nums = [float(x) for x in re.findall(r'\d+\.\d+', cell)]
            assert math.isclose(nums[0], vals[:, k].mean(), abs_tol=0.0051)  # the shown value is within half a unit of the mean
            if len(vals) > 1: assert math.isclose(nums[1], vals[:, k].std(ddof=1), abs_tol=0.0051)
            else: assert len(nums) == 1
    means = np.array([np.mean(a, 0), np.mean(b, 0)]).round(2)
    for k in range(4):
        bold = [('**' in md[i].strip('|').split('|')[k + 1]) for i in range(2)]
        assert bold == list(means[:, k] == means[:, k].max())


@pytest.mark.parametrize('args, msg', [
    (['--methods', 'ce', 'fitnets'], "unknown method 'fitnets'; valid: 'ce', 'kd'"),
    (['--imb', '0.5'], 'imb'),
    (['--seeds'], 'expected at least one argument'),
    (['--epochs', '-1'], 'epochs must be an integer >= 1'),
    (['--class-order', 'size'], "invalid choice: 'size'"),
    (['--n-groups', '11', '--epochs', '1', '--teacher-epochs', '1'], 'n_groups=11 is more than the 10 classes'),
    (['--path', '/tmp'], 'embedded and takes no path'),
    (['--teacher-loss', 'focal'], "invalid choice: 'focal'"),
])
def test_bad_args_give_clear_errors(tmp_path, capsys, args, msg):
    with pytest.raises(SystemExit) as e: main(args + ['--out', str(tmp_path / 'o'), '--quiet'])
    assert e.value.code == 2
    assert msg in capsys.readouterr().err
    assert not (tmp_path / 'o' / RUNS_CSV).exists()                         # nothing trained


def test_summarize_orders_rows_teacher_first():
    runs = pd.DataFrame({'method': ['ltkd', 'teacher', 'kd'], 'head': [1., 2, 3], 'medium': [1., 2, 3],
                         'tail': [1., 2, 3], 'all': [1., 2, 3]})
    assert list(summarize(runs).index) == ['Teacher', 'LTKD', 'KD']


def test_a_run_does_not_depend_on_the_runs_before_it(tmp_path):
    kw = dict(epochs=2, teacher_epochs=1, quiet=True, figures=False)
    alone = run_experiment(methods=['ce'], seeds=[1], out=tmp_path / 'a', **kw)
    after = run_experiment(methods=['kd', 'ce'], seeds=[0, 1], out=tmp_path / 'b', **kw)
    a = alone.set_index('key').loc[alone['key'].iloc[-1], ['head', 'medium', 'tail', 'all']]
    b = after.set_index('key').loc[alone['key'].iloc[-1], ['head', 'medium', 'tail', 'all']]
    assert (a == b).all(), (a, b)


def test_sgd_schedule_uses_the_teacher_modules_paper_fit(tmp_path):
    "schedule='sgd' (the CIFAR/ImageNet presets) runs through `teacher.fit_paper`, teacher and students"
    from ltkd_fastai import teacher as T
    calls = []
    orig = T.fit_paper
    def spy(learn, n_epoch, lr=None, **kw):
        calls.append((n_epoch, lr)); return orig(learn, n_epoch, lr, **kw)
    T.fit_paper = spy
    try:
        runs = run_experiment(schedule='sgd', lr=0.02, methods=['ltkd'], seeds=[0], epochs=2, teacher_epochs=1,
                              out=tmp_path, quiet=True, figures=False)
    finally: T.fit_paper = orig
    assert calls == [(1, 0.02), (2, 0.02)]                     # teacher, then student
    assert list(runs['lr']) == [0.02, 0.02] and runs['all'].notna().all()
    with pytest.raises(ValueError, match='only the sgd schedule has per-model defaults'):
        run_experiment(dataset='cifar10', schedule='one_cycle', out=tmp_path / 'c')   # fails before touching data


def test_cli_adapt_aid_adds_rows_and_resumes(tmp_path):
    "`--adapt aid`: a 'Teacher + AID' row, a '+ AID' row after each method that uses a teacher; a second run retrains nothing"
    out = tmp_path / 'res'
    args = ['--epochs', '1', '--teacher-epochs', '1', '--seeds', '0', '--methods', 'ce', 'kd', '--adapt', 'aid',
            '--no-figures', '--out', str(out)]
    r = _cli(*args)
    assert r.returncode == 0, r.stderr[-3000:]
    lines = r.stdout.splitlines()
    head = next(i for i, l in enumerate(lines) if l.startswith('Method'))
    assert [l.split('  ')[0].strip() for l in lines[head + 2:head + 7]] == ['Teacher', 'Teacher + AID', 'Student (CE)', 'KD', 'KD + AID']
    runs = pd.read_csv(out / RUNS_CSV)
    assert list(runs['method']) == ['teacher', 'teacher+aid', 'ce', 'kd', 'kd+aid'] and runs['key'].is_unique
    assert len(list((out / 'teachers').glob('*.pth'))) == 2                    # the teacher and the adapted teacher
    r = _cli(*args)
    assert r.returncode == 0, r.stderr[-3000:]
    assert 'teacher cnn_small + AID: loaded' in r.stdout
    assert len(pd.read_csv(out / RUNS_CSV)) == 5                               # nothing ran again
