"Property and bad-input tests for `ltkd_fastai.metrics` (the worked examples live in nbs/03_metrics.ipynb)."
from types import SimpleNamespace
import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st
from sklearn.metrics import recall_score

from ltkd_fastai.longtail import class_groups
from ltkd_fastai.metrics import (group_accuracy, group_counts, class_accuracy, group_metrics, GroupAccuracy,
                                 accuracy_report)

SETTINGS = settings(max_examples=60, deadline=None, database=None)

@st.composite
def problems(draw):
    C = draw(st.integers(2, 12))
    G = draw(st.integers(1, C))
    N = draw(st.integers(1, 80))
    rng = np.random.RandomState(draw(st.integers(0, 2**31 - 1)))
    counts = rng.randint(1, 100, C)
    targs = rng.randint(0, C, N)
    logits = rng.randn(N, C).astype(np.float32)
    hit = rng.rand(N) < 0.5
    logits[np.arange(N)[hit], targs[hit]] += 5          # about half the samples right
    cuts = sorted(set(rng.randint(1, N, rng.randint(0, 6)).tolist())) if N > 1 else []
    sizes = [b - a for a, b in zip([0] + cuts, cuts + [N])]
    return torch.from_numpy(logits), torch.from_numpy(targs), class_groups(counts, G), sizes

def _reference(logits, targs, groups):
    "Plain-Python count, float64"
    G = int(groups.max()) + 1
    c, t = [0]*G, [0]*G
    for p, y in zip(logits.argmax(-1).tolist(), targs.tolist()):
        g = int(groups[y]); t[g] += 1; c[g] += int(p == y)
    return c, t

@SETTINGS
@given(pb=problems())
def test_batch_invariance_matches_reference(pb):
    logits, targs, groups, sizes = pb
    c, t = _reference(logits, targs, groups)
    mets = group_metrics(groups)
    for m in mets: m.reset()
    for p, y in zip(logits.split(sizes), targs.split(sizes)):
        for m in mets: m.accumulate(SimpleNamespace(pred=p, yb=(y,)))
    for m, ci, ti in zip(mets, c, t):
        assert (m.correct, m.total) == (ci, ti)
        assert (np.isnan(m.value) if ti == 0 else m.value == ci / ti)
    gc, gt = group_counts(logits, targs, groups)
    assert gc.tolist() == c and gt.tolist() == t
    acc = group_accuracy(logits, targs, groups)
    assert acc.dtype == torch.float64
    assert all((np.isnan(a) if ti == 0 else a == ci / ti) for a, ci, ti in zip(acc.tolist(), c, t))

@SETTINGS
@given(pb=problems())
def test_groups_recombine_to_overall_accuracy(pb):
    logits, targs, groups, _ = pb
    gc, gt = group_counts(logits, targs, groups)
    overall = (logits.argmax(-1) == targs).double().mean().item()
    assert gc.sum().item() / gt.sum().item() == pytest.approx(overall, abs=1e-15)
    rep = accuracy_report(logits, targs, groups)
    assert rep.loc['all', 'accuracy'] == pytest.approx(overall, abs=1e-15)
    assert rep['valid'].iloc[:-1].sum() == len(targs) and rep['classes'].iloc[-1] == len(groups)

@SETTINGS
@given(pb=problems())
def test_class_accuracy_is_per_class_recall(pb):
    logits, targs, groups, _ = pb
    C = len(groups)
    present = np.unique(targs.numpy())
    ref = recall_score(targs.numpy(), logits.argmax(-1).numpy(), labels=present, average=None, zero_division=0)
    acc = class_accuracy(logits, targs, C)
    assert len(acc) == C
    np.testing.assert_allclose(acc[present].numpy(), ref, rtol=0, atol=1e-15)
    assert torch.isnan(acc[np.setdiff1d(np.arange(C), present)]).all()

def test_metric_state_is_cpu_ints_and_reset():
    groups = torch.tensor([0, 1, 2])
    m = GroupAccuracy(groups, 1)
    m.accumulate(SimpleNamespace(pred=torch.eye(3)[[1, 0, 1]], yb=(torch.tensor([1, 1, 1]),)))
    assert (m.correct, m.total, m.value, m.name) == (2, 3, 2/3, 'medium')
    assert isinstance(m.correct, int) and isinstance(m.total, int)
    m.reset()
    assert (m.correct, m.total) == (0, 0) and np.isnan(m.value)

@pytest.mark.parametrize('groups,names,msg', [
    ([[0, 1], [1, 2]], None, '1-D'), ([0, -1, 1], None, 'non-negative'), ([0, 1, 2], ['a', 'b'], '2 names for 3 groups'),
    ([0., 0.5, 1.], None, 'integer'), ([], None, '1-D')])
def test_group_metrics_bad_input(groups, names, msg):
    with pytest.raises(ValueError, match=msg): group_metrics(groups, names)

def test_group_accuracy_bad_input():
    logits, targs = torch.randn(4, 3), torch.tensor([0, 1, 2, 1])
    with pytest.raises(ValueError, match='expected preds'): group_accuracy(logits, targs[:3], [0, 1, 2])
    with pytest.raises(ValueError, match='expected preds'): group_accuracy(torch.randn(4, 3, 2), targs, [0, 1, 2])
    with pytest.raises(ValueError, match='class indices'): group_accuracy(logits, targs, [0, 1])
    with pytest.raises(ValueError, match='group must be one of'): GroupAccuracy([0, 1, 2], 5)
    with pytest.raises(ValueError, match='class counts'): accuracy_report(logits, targs, [0, 1, 2], class_counts=[1])
