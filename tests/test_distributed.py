"""Two real processes with the gloo backend (CPU): LTKD and `distill_learner` under distributed data parallel training.

One `torchrun --nproc_per_node 2` launch of `distributed_worker.py` (module fixture, about 20-30 s on 2 cores) does
the distributed work; each test compares what the ranks saw with one process doing the same on the whole batch or
the whole validation set.

The losses notebook (`nbs/00_losses.ipynb`, "Group statistics: given sums, and several processes") checks `sync` with
two threads standing in for two processes and, flagged `slow`, once with two gloo processes; here the real
processes run in the default test run, on both computation paths (a rank with large logits takes the stable one),
with `within='teacher'` and one-class groups, and with `sync=False`, and then through fastai's training loop.
"""
import os, socket, subprocess, sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

pytest.importorskip('accelerate', reason="fastai's distributed path (learn.distrib_ctx) needs accelerate, a dev requirement")

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import distributed_worker as W  # noqa: E402

from ltkd_fastai.losses import ltkd_loss
from ltkd_fastai.longtail import class_groups
from ltkd_fastai.metrics import group_accuracy

B, C = 32, 10
GROUPS = torch.tensor([0, 0, 0, 1, 1, 1, 1, 2, 2, 2])


def loss_cases():
    g = torch.Generator().manual_seed(0)
    s, t = 3 * torch.randn(B, C, generator=g), 3 * torch.randn(B, C, generator=g)
    s_big = s.clone(); s_big[B // 2:] *= 100.               # rank 1's group sums leave the fast path's range
    return {'fast': (s, t, GROUPS, {}), 'stable on rank 1': (s_big, t, GROUPS, {}),
            'teacher within': (s, t, GROUPS, dict(within='teacher')),
            'one-class groups': (s, t, torch.arange(C), {})}


def free_port():
    with socket.socket() as sk:
        sk.bind(('127.0.0.1', 0))
        return sk.getsockname()[1]


@pytest.fixture(scope='module')
def ranks(tmp_path_factory):
    out = tmp_path_factory.mktemp('ddp')
    torch.save({'loss_cases': loss_cases()}, out / 'inputs.pt')
    env = {**os.environ, 'OMP_NUM_THREADS': '1', 'PYTHONPATH': os.pathsep.join([str(HERE.parent), os.environ.get('PYTHONPATH', '')])}
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', '2', '--master_addr', '127.0.0.1',
           '--master_port', str(free_port()), str(HERE / 'distributed_worker.py'), str(out)]
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, f"torchrun failed ({p.returncode}):\n{p.stdout[-4000:]}\n{p.stderr[-8000:]}"
    res = [torch.load(out / f'rank{r}.pt', weights_only=False) for r in range(2)]
    assert [r['rank'] for r in res] == [0, 1] and res[0]['world'] == 2
    return res


def grad_close(actual, expected):
    "Gradients: relative, with an absolute floor scaled to the largest entry (entries near 0 have no relative scale)"
    assert_close(actual, expected, rtol=1e-4, atol=1e-5 * float(expected.abs().max()))


# ------------------------------------------------------------------------------------------------- (a) ltkd_loss
@pytest.mark.parametrize('case', list(loss_cases()))
def test_synced_ltkd_equals_the_whole_batch(ranks, case):
    "sync=True: the ranks' mean loss and averaged gradients are those of one process on the concatenated batch"
    s, t, groups, kw = loss_cases()[case]
    x = s.clone().requires_grad_()
    full = ltkd_loss(x, t, groups, **kw); full.backward()
    (l0, g0), (l1, g1) = [r['loss'][case, True] for r in ranks]
    assert_close((l0 + l1) / 2, full.detach(), rtol=1e-5, atol=0)
    grad_close(torch.cat([g0, g1]) / 2, x.grad)


@pytest.mark.parametrize('case', list(loss_cases()))
def test_unsynced_ltkd_keeps_per_rank_statistics(ranks, case):
    "sync=False: each rank's value and gradient are one process's on that rank's half; they differ from the whole batch's"
    s, t, groups, kw = loss_cases()[case]
    for r, res in enumerate(ranks):
        x = s[16 * r:16 * (r + 1)].clone().requires_grad_()
        local = ltkd_loss(x, t[16 * r:16 * (r + 1)], groups, **kw); local.backward()
        l, g = res['loss'][case, False]
        assert_close(l, local.detach(), rtol=1e-6, atol=0)
        grad_close(g, x.grad)
    x = s.clone().requires_grad_(); ltkd_loss(x, t, groups, **kw).backward()
    g_unsynced = torch.cat([res['loss'][case, False][1] for res in ranks]) / 2
    assert not torch.allclose(g_unsynced, x.grad, rtol=1e-3, atol=1e-3 * float(x.grad.abs().max()))


# ----------------------------------------------------------------------------- (b) distill_learner through DDP
def single_process_learner(student_state):
    from ltkd_fastai.distill import distill_learner
    student = W.bn_student(); student.load_state_dict(student_state)
    return distill_learner(W.make_dls(), W.teacher_model(), student, 'ltkd')


def learn_report(learn):
    from ltkd_fastai.metrics import group_report
    return group_report(learn)


def test_group_metrics_cover_the_whole_validation_set(ranks):
    "Every rank reports the head/medium/tail accuracy of the whole (padded, then unpadded) validation set"
    m0, m1 = ranks[0]['metrics'], ranks[1]['metrics']
    names = m0['names'][1:-1]                                  # without 'epoch' and 'time'
    assert {'head', 'medium', 'tail'} <= set(names)
    for k, v in m0['student'].items(): assert torch.equal(v, m1['student'][k]), k   # DDP kept the ranks in step
    learn = single_process_learner(m0['student'])
    preds, targs = learn.get_preds()
    assert len(targs) == W.N_VALID and W.N_VALID % 2 == 1      # fastai pads the two shares to 38 + 38
    ref = dict(zip(['head', 'medium', 'tail'], group_accuracy(preds, targs, learn.groups).tolist()))
    vals = learn.validate()                                    # [valid_loss, *metrics]
    valid = dict(zip(learn.recorder.metric_names[2:], vals))
    for g in ('head', 'medium', 'tail'):
        i = names.index(g)
        assert m0['values'][i] == m1['values'][i] == ref[g] == valid[g], (g, m0['values'][i], m1['values'][i], ref[g])
    # `group_report` inside `learn.distrib_ctx()` on every process (as the tutorial does): the whole set, gathered
    import pandas as pd
    for r in ranks: pd.testing.assert_frame_equal(r['metrics']['report'], learn_report(learn))
    # the check has power: a metric counting only rank 0's share (the first 38 items) would read differently
    share = group_accuracy(preds[:38], targs[:38], learn.groups).tolist()
    assert share != [ref[g] for g in ('head', 'medium', 'tail')]


def test_teacher_frozen_on_every_rank_never_wrapped(ranks):
    for r in ranks:
        seen = r['metrics']['seen']
        assert seen == dict(student_ddp=True, teacher_ddp=False, teacher_in_model=False, teacher_training=False,
                            teacher_grad=False, dls_distributed=True), seen
        for k, v in r['metrics']['teacher0'].items(): assert torch.equal(r['metrics']['teacher'][k], v), k


@pytest.mark.parametrize('sync', [True, False])
def test_one_ddp_step_equals_one_step_on_the_whole_batch(ranks, sync):
    """A student without batch norm, one SGD step per rank (32 of the 64 training images each): the update equals one
    process's step on all 64 with LTKD's group sums of the whole batch (`sync=True`), or on the mean of the two ranks'
    losses with per-rank group sums (`sync=False`)"""
    from ltkd_fastai.distill import method_config
    steps = [r['step'][sync] for r in ranks]
    for st in steps: assert len(st['batches']) == 1 and st['seen']['student_ddp'] and st['seen']['dls_distributed']
    for k, v in steps[0]['w0'].items(): assert torch.equal(v, steps[1]['w0'][k]) and torch.equal(v, W.linear_student().state_dict()[k])
    xs, ys = zip(*[st['batches'][0] for st in steps])
    assert sorted(torch.cat(ys).tolist()) == sorted(torch.repeat_interleave(torch.arange(C), torch.tensor(W.COUNTS)).tolist())
    cfg = method_config('ltkd')
    groups = class_groups(W.COUNTS)
    student, teacher = W.linear_student(), W.teacher_model().eval()
    def loss(x, y, sync_):
        s = student(x)
        with torch.no_grad(): t = teacher(x)
        return cfg['ce_weight'] * F.cross_entropy(s, y) + cfg['weight'] * ltkd_loss(s, t, groups, sync=sync_, **cfg['hparams'])
    ref = loss(torch.cat(xs), torch.cat(ys), True) if sync else (loss(xs[0], ys[0], False) + loss(xs[1], ys[1], False)) / 2
    ref.backward()
    lr = 0.05
    for r, st in enumerate(steps):
        for (k, p) in student.named_parameters():
            grad_close((st['w0'][k] - st['w1'][k]) / lr, p.grad)
    other = ranks[0]['step'][not sync]                         # the two settings really train differently
    assert not torch.allclose(other['w1']['1.weight'], steps[0]['w1']['1.weight'], rtol=1e-4, atol=0)


# --------------------------------------------------------------------- passes over the whole training set
def test_teacher_cache_works_per_rank(ranks):
    "cache_teacher=True: every rank tables the whole training set once and trains like the uncached fit"
    for r in ranks:
        w = r['whole']['cache']
        assert w['ok'], w['error']
        for k, v in r['metrics']['student'].items():
            assert_close(w['student'][k], v, rtol=1e-4, atol=1e-5 * max(1., float(v.abs().max())))


def test_dataset_group_stats_under_ddp(ranks):
    "group_stats='dataset': the teacher's group masses over the whole training set, the same on every rank"
    w0, w1 = ranks[0]['whole']['dataset'], ranks[1]['whole']['dataset']
    assert w0['ok'], w0['error']
    for k, v in w0['student'].items(): assert torch.equal(v, w1['student'][k]), k
