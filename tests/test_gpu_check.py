"""`benchmarks/gpu_check.py --smoke` on the CPU: every part runs and prints what the GPU run prints (about 30 s).

The GPU run itself (`python benchmarks/gpu_check.py`, under 10 minutes on one GPU) is the issue-14 device check; its
output goes to `benchmarks/results/` when a session has a GPU.
"""
import importlib.util, re, subprocess, sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / 'benchmarks' / 'gpu_check.py'
NUM = r'[0-9.]+(?:e[+-]?[0-9]+)?'


def load_script():
    spec = importlib.util.spec_from_file_location('gpu_check', SCRIPT)
    mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope='module')
def smoke():
    p = subprocess.run([sys.executable, str(SCRIPT), '--smoke'], capture_output=True, text=True, timeout=400, cwd=ROOT)
    assert p.returncode == 0, p.stdout[-4000:] + p.stderr[-4000:]
    return [l.rsplit('\r', 1)[-1].replace('\u2588', '') for l in p.stdout.splitlines()]  # progress bars share lines


def test_header_and_verdict(smoke):
    assert smoke[0].startswith('gpu_check: device cpu') and 'smoke' in smoke[0]
    assert re.fullmatch(r'gpu_check: ok in \d+ s', smoke[-1]), smoke[-1]


def test_throughput_lines(smoke):
    "Four configurations timed side by side; the two ratios against the plain loop with their target, the cache speed-up"
    for cfg in ('plain loop', 'distill_learner', 'plain loop + cache', 'distill_learner + cache'):
        m = [re.match(rf'throughput \[none\] {re.escape(cfg)} +({NUM}) s/epoch +({NUM}) train img/s', l) for l in smoke]
        m = [x for x in m if x]
        assert len(m) == 1, cfg
        sec, ips = map(float, m[0].groups())
        assert sec > 0 and ips == pytest.approx(256 / sec, rel=0.01)     # smoke: 256 training images
    for label in ('distill_learner vs plain loop', 'distill_learner vs plain loop, both cached'):
        assert any(re.fullmatch(rf'ratio \[none\] {re.escape(label)}: {NUM} \(target >= 0.95\) (ok|BELOW TARGET)', l)
                   for l in smoke), label
    assert any(re.fullmatch(rf'ratio \[none\] cache speed-up of distill_learner: {NUM}x', l) for l in smoke)


def test_finite_covers_every_registered_logit_method(smoke):
    "Each method whose loss takes logit inputs only: one 'ok' line per half-precision dtype; the others say why skipped"
    gc = load_script()
    import ltkd_fastai.all  # noqa: F401  (the script imports every module too)
    from ltkd_fastai.distill import METHODS
    for key, spec in METHODS.items():
        lines = [l for l in smoke if re.match(rf'finite (\[\w+\] )?{key}:', l)]
        if spec.loss is None or set(spec.inputs) - gc.LOGIT_INPUTS:
            assert len(lines) == 1 and 'skipped' in lines[0], (key, lines)
        else:
            assert len(lines) == 2, (key, lines)
            for dt, l in zip(('fp16', 'bf16'), lines):
                assert re.fullmatch(rf'finite \[{dt}\] {key}: loss {NUM} \(float32\), max\|grad\| {NUM} ok', l), l


def test_quickstart_gpu_branch(smoke):
    "The quick start ran its GPU branch (CIFAR-100-LT from stand-in files) and printed the per-group table"
    assert any(l.startswith('quickstart: settings cifar100, imb 10, cnn_tiny -> cnn_tiny, 1 epochs') for l in smoke)
    assert any('100 classes, 346 training images (10 in the largest class, 1 in the smallest)' in l for l in smoke)
    rows = {l.split(':', 1)[1].strip().rsplit(None, 4)[0]: l for l in smoke
            if l.startswith('quickstart: ') and re.search(rf'(\s+{NUM}){{4}}$', l)}
    assert set(rows) == {'Teacher', 'Student (CE)', 'KD', 'LTKD'}, rows
    assert any(re.fullmatch(rf'quickstart: ok in {NUM} s', l) for l in smoke)


def test_non_finite_loss_fails_the_check(capsys):
    "A method registered while the check runs is checked too; an infinite loss makes the exit status 1"
    gc = load_script()
    from ltkd_fastai.distill import METHODS, register_method
    def overflowing(s, t): return (s.float() * 1e30).exp().sum()
    register_method('overflowing_kd', overflowing)
    try: rc = gc.main(['--smoke', '--parts', 'finite'])
    finally: METHODS.pop('overflowing_kd', None)
    out = capsys.readouterr().out.splitlines()
    assert rc == 1
    assert [l for l in out if l.startswith('finite [fp16] overflowing_kd:')][0].endswith('FAILED')
    assert out[-1].startswith('gpu_check: FAILED (not finite: overflowing_kd fp16; not finite: overflowing_kd bf16)')


def test_bad_arguments():
    gc = load_script()
    with pytest.raises(SystemExit): gc.parse_args(['--amp', 'fp8'])
    with pytest.raises(SystemExit): gc.parse_args(['--parts', 'speed'])
    with pytest.raises(SystemExit): gc.parse_args(['--device', 'cpu', '--amp', 'bf16'])   # fastai autocasts on CUDA only
