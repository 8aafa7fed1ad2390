"Property and bad-input tests for `ltkd_fastai.longtail` (the worked examples live in nbs/01_longtail.ipynb)."
import warnings
import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from ltkd_fastai.longtail import (long_tail_counts, long_tail_subset, class_groups, group_sizes, group_names,
                                  LongTailSplitter)

SETTINGS = settings(max_examples=60, deadline=None, database=None)   # no .hypothesis folder in the repo

# ---- known totals (exact) --------------------------------------------------------------------------------
@pytest.mark.parametrize('n_max,C,gamma,total', [
    (500, 100, 10, 19573), (500, 100, 20, 15907), (500, 100, 50, 12608), (500, 100, 100, 10847),  # CIFAR-100-LT
    (5000, 10, 100, 12406),                                                                     # CIFAR-10-LT
    (500, 200, 100, 21549)])                                                                    # TinyImageNet-LT
def test_known_totals(n_max, C, gamma, total):
    assert sum(long_tail_counts(n_max, C, gamma)) == total

def test_cifar100_groups():
    counts = long_tail_counts(500, 100, 100)
    g = class_groups(counts)
    assert torch.bincount(g).tolist() == [33, 34, 33]
    assert [sum(c for c, k in zip(counts, g.tolist()) if k == j) for j in range(3)] == [8615, 1864, 368]

# ---- properties ------------------------------------------------------------------------------------------
@SETTINGS
@given(n_max=st.integers(1, 5000), C=st.integers(2, 300), gamma=st.floats(1, 1000), profile=st.sampled_from(['exp', 'step']))
def test_counts_monotone_and_bounded(n_max, C, gamma, profile):
    c = long_tail_counts(n_max, C, gamma, profile)
    assert len(c) == C and c[0] == n_max
    assert all(a >= b for a, b in zip(c, c[1:]))
    assert all(isinstance(x, int) and int(n_max / gamma) - 1 <= x <= n_max for x in c)
    assert c[-1] == int(n_max / gamma) or c[-1] == int(n_max / gamma) - 1   # float rounding of (1/g)**1 only

@st.composite
def label_sets(draw):
    C = draw(st.integers(2, 8))
    sizes = draw(st.lists(st.integers(0, 30), min_size=C, max_size=C))
    sizes[draw(st.integers(0, C - 1))] = draw(st.integers(1, 30))   # at least one non-empty class
    labels = np.repeat(np.arange(C), sizes)
    np.random.RandomState(draw(st.integers(0, 2**31 - 1))).shuffle(labels)
    return labels, C

@SETTINGS
@given(ls=label_sets(), gamma=st.floats(1, 50), seed=st.integers(0, 10**6),
       order=st.sampled_from(['label', 'random']), profile=st.sampled_from(['exp', 'step']))
def test_subset_invariants(ls, gamma, seed, order, profile):
    labels, C = ls
    classes = list(range(C))
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        idx = long_tail_subset(labels, gamma, profile, seed, classes=classes, class_order=order, on_short='clip')
        again = long_tail_subset(labels, gamma, profile, seed, classes=classes, class_order=order, on_short='clip')
    assert np.array_equal(idx, again)                                   # deterministic per seed
    assert idx.dtype == np.int64 and len(np.unique(idx)) == len(idx)      # unique
    assert ((idx >= 0) & (idx < len(labels))).all()
    y = labels[idx]
    # class by class, in label order
    assert (np.diff(y) >= 0).all()
    avail = np.bincount(labels, minlength=C)
    want = np.empty(C, int)
    rank = np.arange(C) if order == 'label' else np.random.RandomState(seed).permutation(C)
    want[rank] = long_tail_counts(int(avail.max()), C, gamma, profile)
    assert np.bincount(y, minlength=C).tolist() == np.minimum(want, avail).tolist()

@SETTINGS
@given(ls=label_sets(), seed=st.integers(0, 10**6))
def test_subset_is_prefix_of_same_shuffle(ls, seed):
    "A smaller gamma keeps a superset of a larger gamma's items (same seed, same per-class shuffle)"
    labels, C = ls
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        big = set(long_tail_subset(labels, 2, seed=seed, classes=range(C), on_short='clip').tolist())
        small = set(long_tail_subset(labels, 20, seed=seed, classes=range(C), on_short='clip').tolist())
    assert small <= big

@SETTINGS
@given(counts=st.lists(st.integers(0, 1000), min_size=2, max_size=200), data=st.data())
def test_group_invariants(counts, data):
    C = len(counts)
    G = data.draw(st.integers(1, C))
    g = class_groups(counts, G)
    assert g.dtype == torch.long and g.shape == (C,)
    sizes = torch.bincount(g, minlength=G).tolist()
    assert sizes == group_sizes(C, G) and sum(sizes) == C and min(sizes) >= 1
    if G == 3: assert sizes[0] == sizes[2] == round(0.33 * C)
    else: assert max(sizes) - min(sizes) <= 1
    # every class in a lower group has a count >= every class in a higher group (ties by index)
    key = sorted(range(C), key=lambda i: (-counts[i], i))
    assert [g[i].item() for i in key] == sorted(g.tolist())
    assert len(group_names(G)) == G

def test_group_permutation_equivariance():
    rng = np.random.RandomState(0)
    counts = rng.permutation(np.arange(50) * 3)    # distinct counts: no ties
    perm = rng.permutation(50)
    assert torch.equal(class_groups(counts[perm]), class_groups(counts)[perm])

# ---- bad input -------------------------------------------------------------------------------------------
@pytest.mark.parametrize('kw,msg', [
    (dict(imb_factor=0.9), 'imb_factor'), (dict(imb_factor=-1), 'imb_factor'), (dict(imb_factor='x'), 'imb_factor'),
    (dict(n_classes=1), 'at least 2 classes'), (dict(n_classes=0), 'at least 2 classes'),
    (dict(profile='linear'), 'unknown profile'), (dict(n_max=-5), 'n_max'), (dict(n_max=0), 'n_max')])
def test_counts_bad_input(kw, msg):
    with pytest.raises(ValueError, match=msg): long_tail_counts(**(dict(n_max=500, n_classes=10, imb_factor=10) | kw))

labels = np.repeat(np.arange(4), 10)

@pytest.mark.parametrize('kw,msg', [
    (dict(imb_factor=0), 'imb_factor'), (dict(profile='cosine'), 'unknown profile'),
    (dict(classes=[0, 1, 2]), 'missing from the class list'), (dict(classes=[0, 1, 2, 3, 3]), 'duplicates'),
    (dict(class_order='reverse'), 'class_order'), (dict(class_order=[3, 2, 1]), 'exactly once'),
    (dict(class_order=[3, 2, 1, 1]), 'exactly once'), (dict(on_short='skip'), 'on_short'),
    (dict(n_max=20), 'fewer items')])
def test_subset_bad_input(kw, msg):
    with pytest.raises(ValueError, match=msg): long_tail_subset(labels, **(dict(imb_factor=10) | kw))

def test_subset_short_class_named():
    y = np.array([0]*20 + [1]*3 + [2]*20)
    with pytest.raises(ValueError, match=r"1 has 3 items, needs 14"): long_tail_subset(y, 2)
    with pytest.warns(UserWarning, match='clipped 1 class'): idx = long_tail_subset(y, 2, on_short='clip')
    assert np.bincount(y[idx]).tolist() == [20, 3, 10]

def test_subset_one_class():
    with pytest.raises(ValueError, match='at least 2 classes'): long_tail_subset(np.zeros(10, int), 10)

@pytest.mark.parametrize('counts,G,msg', [
    ([3, 2], 3, 'cannot make 3 groups'), ([5, 4, 3], 0, 'positive integer'), ([5, 4, 3], -1, 'positive integer'),
    ([5, -4, 3], 3, 'non-negative'), ([5], 1, 'at least 2 classes'), ([5, float('nan'), 1], 3, 'finite'),
    ([[1, 2], [3, 4]], 2, '1-D')])
def test_groups_bad_input(counts, G, msg):
    with pytest.raises(ValueError, match=msg): class_groups(counts, G)

def test_splitter_bad_input(tmp_path):
    for split in ('train', 'test'):
        for c in ('a', 'b'):
            (tmp_path/split/c).mkdir(parents=True)
    items = [tmp_path/'train'/'a'/f'{i}.png' for i in range(4)] + [tmp_path/'train'/'b'/f'{i}.png' for i in range(4)]
    with pytest.raises(ValueError, match="no items found in a 'test' or 'valid' folder"): LongTailSplitter(2)(items)
    items += [tmp_path/'test'/'a'/'0.png', tmp_path/'test'/'b'/'0.png']
    s = LongTailSplitter(2, n_groups=2)
    tr, va = s(items)                      # splitting needs only paths: no file is opened
    assert s.class_counts == [4, 2] and s.vocab == ['a', 'b'] and s.groups.tolist() == [0, 1] and len(va) == 2
    assert sorted(tr) == list(tr) and set(tr) <= set(range(8))
    with pytest.raises(ValueError, match='cannot make 3 groups'): LongTailSplitter(2)(items)
    with pytest.raises(ValueError, match='imb_factor'): LongTailSplitter(0)
