"Bad input, properties over every method, and fastai interplay of `ltkd_fastai.distill` (the notebook holds the examples)."
import copy, pickle, warnings
import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from fastai.callback.core import Callback
from fastai.callback.mixup import MixUp
from fastai.data.core import Datasets
from fastai.data.transforms import ItemGetter
from fastai.learner import Learner, Recorder, load_learner
from fastai.losses import CrossEntropyLossFlat
from fastai.torch_core import set_seed

from ltkd_fastai.distill import (METHODS, DistillCallback, distill_learner, get_method, register_method, method_config,
                                 warmup_factor, class_counts_of, resolve_groups)
from ltkd_fastai.longtail import class_groups
from ltkd_fastai import losses

C, COUNTS = 5, [40, 20, 10, 6, 4]


def make_dls(counts=COUNTS, bs=16, seed=0):
    set_seed(seed)
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(C, 3, 4, 4, generator=g)
    y = torch.cat([torch.full((n,), c) for c, n in enumerate(counts)])
    yv = torch.arange(5 * C) % C
    x, xv = means[y] + torch.randn(len(y), 3, 4, 4, generator=g), means[yv] + torch.randn(len(yv), 3, 4, 4, generator=g)
    items = list(zip(x, y)) + list(zip(xv, yv))
    ds = Datasets(items, tfms=[[ItemGetter(0)], [ItemGetter(1)]], splits=[range(len(y)), range(len(y), len(items))])
    dls = ds.dataloaders(bs=bs, num_workers=0)
    dls.c = C
    return dls


def net(seed, n_out=C):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(48, 16), nn.ReLU(), nn.Linear(16, n_out))


def quiet_fit(learn, n=1, lr=1e-2, **kw):
    with learn.no_logging(), learn.no_bar(): learn.fit(n, lr, **kw)


# ---------------------------------------------------------------- bad input
def test_unknown_method_lists_valid_keys():
    with pytest.raises(ValueError, match="valid methods: 'ce', 'kd', 'dkd', 'dist', 'ltkd'"): get_method('fitnets')
    with pytest.raises(ValueError, match='unknown distillation method'): DistillCallback(net(0), 'KD')


@pytest.mark.parametrize('kw, msg', [
    (dict(key='x', loss=lambda s, t: s.sum(), inputs=('logits_t',)), 'unknown loss inputs'),
    (dict(key='x', loss=lambda s, fs, ft: s.sum()), 'names no layers'),
    (dict(key='x-y', loss=lambda s, t: s.sum()), 'lowercase'),
    (dict(key='x', loss=3), 'must be callable'),
    (dict(key='x', loss=None, ce_weight=0.), 'needs ce_weight > 0'),
    (dict(key='kd', loss=lambda s, t: s.sum()), 'already registered'),
])
def test_register_method_bad_input(kw, msg):
    with pytest.raises(ValueError, match=msg): register_method(**kw)
    assert 'x' not in METHODS


def test_register_method_with_kwargs_loss_accepts_any_hyperparameter():
    def anyloss(s, t, **kw): return (s - t).pow(2).mean() * kw.get('scale', 1.)
    try:
        register_method('anyloss_test', anyloss, defaults=dict(scale=2.))
        assert method_config('anyloss_test', foo=1)['hparams'] == dict(scale=2., foo=1)
    finally: METHODS.pop('anyloss_test', None)


def test_method_config_rejects_foreign_hyperparameters():
    with pytest.raises(ValueError, match=r"unknown argument\(s\) \['tau'\] for method 'ltkd'"): method_config('ltkd', tau=1.)
    with pytest.raises(ValueError, match='>= 0'): method_config('dkd', warmup=-1)


def test_callback_needs_its_inputs():
    with pytest.raises(ValueError, match="needs a teacher"): DistillCallback(None, 'kd')
    with pytest.raises(ValueError, match="needs `groups`"): DistillCallback(net(0), 'ltkd')
    with pytest.raises(ValueError, match="needs `class_counts`"): DistillCallback(None, 'la')
    with pytest.raises(ValueError, match="must be an nn.Module"): DistillCallback('resnet8', 'kd')


def test_distill_learner_bad_input():
    dls = make_dls()
    with pytest.raises(ValueError, match='`teacher` must be'): distill_learner(dls, 42, net(1), 'kd')
    with pytest.raises(ValueError, match='`student` must be'): distill_learner(dls, net(0), 42, 'kd')
    with pytest.raises(ValueError, match='same module'):
        m = net(0); distill_learner(dls, m, m, 'kd')
    with pytest.raises(ValueError, match='class_counts has 3 classes but the data has 5'):
        distill_learner(dls, net(0), net(1), class_counts=[1, 2, 3])
    with pytest.raises(ValueError, match='must return a logits tensor'):
        class Pair(nn.Module):
            def __init__(self): super().__init__(); self.m = net(0)
            def forward(self, x): return self.m(x), x
        distill_learner(dls, Pair(), net(1), 'kd')
    with pytest.raises(ValueError, match='cannot run on a batch'):
        distill_learner(dls, nn.Sequential(nn.Flatten(), nn.Linear(7, C)), net(1), 'kd')
    dls.c = None
    with pytest.raises(ValueError, match='pass n_out='): distill_learner(dls, net(0), net(1), 'kd', groups=None)


def test_unknown_model_name_and_missing_checkpoint():
    dls = make_dls()
    with pytest.raises(ValueError, match='unknown model'): distill_learner(dls, net(0), 'no_such_net', 'kd')
    with pytest.raises(ValueError, match='checkpoint not found'): distill_learner(dls, 'teachers/t.pth', net(1), 'kd')


# ---------------------------------------------------------------- properties over every method
def first_batch(method):
    "A learner for `method` fitted one epoch at lr 0, and (input, target, prediction, loss) of each training batch"
    learn = distill_learner(make_dls(), net(0), net(1), method, lr=0.)
    seen = []
    class Grab(Callback):
        order = 30
        def after_loss(self):
            if self.training: seen.append((self.xb[0].clone(), self.yb[0].clone(), self.pred.detach().clone(), self.loss.item()))
    quiet_fit(learn, 1, 0., cbs=Grab())
    return learn, seen


@pytest.mark.parametrize('method', [k for k in METHODS if not METHODS[k].uses_features])  # feature methods: the notebook
def test_training_loss_is_the_registry_formula(method):
    "One batch through fastai: the loss the optimiser sees is ce_weight*CE + weight*loss(...) recomputed independently"
    learn, seen = first_batch(method)
    spec, cfg = get_method(method), method_config(method)
    xb, yb, pred, loss = seen[0]
    with torch.no_grad(): t = learn.distill.teacher(xb) if spec.uses_teacher else None
    counts = torch.tensor(COUNTS, dtype=torch.float32)
    ctx = dict(t=t, target=yb, groups=class_groups(COUNTS), log_prior=(counts / counts.sum()).log(), class_counts=counts,
               group_sums=None, epoch=0, pct_train=0.)
    ref = cfg['ce_weight'] * F.cross_entropy(pred, yb).item() if cfg['ce_weight'] else 0.
    if spec.loss is not None:
        ref += cfg['weight'] * warmup_factor(0, cfg['warmup']) * spec.loss(pred, **{k: ctx[k] for k in spec.inputs}, **cfg['hparams']).item()
    assert loss == pytest.approx(ref, rel=1e-5, abs=1e-6)


def test_logged_terms_add_up_to_the_epoch_loss():
    dls = make_dls()
    learn = distill_learner(dls, net(0), net(1), 'ltkd', lr=0.)
    losses_ = []
    class Grab(Callback):
        order = 30
        def after_loss(self):
            if self.training: losses_.append((self.loss.item(), len(self.yb[0])))
    quiet_fit(learn, 1, 0., cbs=Grab())
    v = dict(zip(learn.recorder.metric_names[1:-1], learn.recorder.values[-1]))
    mean = sum(l * n for l, n in losses_) / sum(n for _, n in losses_)
    assert v['ce'] + v['cross'] + v['within'] == pytest.approx(mean, rel=1e-5)


def test_train_metrics_recorder_logs_terms_in_the_training_half_only():
    dls = make_dls()
    learn = distill_learner(dls, net(0), net(1), 'kd', cbs=None)
    learn.recorder.train_metrics = True
    quiet_fit(learn)
    v = dict(zip(learn.recorder.metric_names[1:-1], learn.recorder.values[-1]))
    assert np.isfinite(v['train_ce']) and np.isfinite(v['train_kd'])
    assert np.isnan(v['valid_ce']) and np.isnan(v['valid_kd'])


# ---------------------------------------------------------------- fastai interplay
def test_ce_method_never_runs_the_teacher():
    class Boom(nn.Module):
        def forward(self, x): raise AssertionError('teacher ran')
    learn = distill_learner(make_dls(), None, net(1), 'ce')
    learn.distill.teacher = Boom()
    quiet_fit(learn)
    assert np.isfinite(learn.recorder.values[-1][0])


def test_validation_never_runs_the_teacher_and_get_preds_loss_is_ce():
    calls = []
    class Counting(nn.Module):
        def __init__(self): super().__init__(); self.m = net(0)
        def forward(self, x): calls.append(len(x)); return self.m(x)
    dls = make_dls()
    learn = distill_learner(dls, Counting(), net(1), 'ltkd')
    calls.clear()
    quiet_fit(learn)
    assert sum(calls) == len(dls.train) * 16  # training batches only
    calls.clear()
    preds, targs, lss = learn.get_preds(with_loss=True, act=lambda o: o)  # raw logits
    assert calls == []
    np.testing.assert_allclose(lss, F.cross_entropy(preds, targs, reduction='none'), rtol=1e-4, atol=1e-5)


def test_plain_learner_with_the_callback_and_lr_find():
    dls = make_dls()
    learn = Learner(dls, net(1), loss_func=CrossEntropyLossFlat(), cbs=DistillCallback(net(0), 'dkd'))
    lf0 = learn.loss_func
    quiet_fit(learn)
    with learn.no_logging(), learn.no_bar(): learn.lr_find(num_it=5, show_plot=False)
    assert learn.loss_func is lf0


def test_mixup_teacher_sees_the_mixed_batch():
    dls = make_dls()
    seen = []
    class Spy(nn.Module):
        def __init__(self): super().__init__(); self.m = net(0)
        def forward(self, x): seen.append(x.clone()); return self.m(x)
    inputs = []
    class Grab(Callback):
        order = 30
        def after_pred(self):
            if self.training: inputs.append(self.xb[0].clone())
    learn = distill_learner(dls, Spy(), net(1), 'kd', cbs=[MixUp(), Grab()])
    seen.clear()  # the width check's forward
    quiet_fit(learn)
    assert len(seen) == len(inputs) > 0 and all(torch.equal(a, b) for a, b in zip(seen, inputs))
    with pytest.raises(ValueError, match='MixUp'): distill_learner(dls, net(0), net(1), 'kd', cbs=MixUp(), cache_teacher=True)


def test_pickle_drops_teacher_and_cache():
    dls = make_dls()
    learn = distill_learner(dls, net(0), net(1), 'kd', cache_teacher=True)
    quiet_fit(learn)
    cb = learn.distill
    assert cb.runner.table is not None
    state = pickle.loads(pickle.dumps(cb)).__dict__
    runner = state['runner']
    assert runner.teacher is None and runner.table is None and runner._idx_rec is None
    assert not {'connector', '_caps', '_t'} & {k for k, v in state.items() if v is not None}
    assert cb.teacher is not None and cb.runner.table is not None  # the live callback keeps them


def test_cache_is_reused_across_fits_and_rebuilt_for_new_data():
    dls = make_dls()
    calls = []
    class Counting(nn.Module):
        def __init__(self): super().__init__(); self.m = net(0)
        def forward(self, x): calls.append(len(x)); return self.m(x)
    learn = distill_learner(dls, Counting(), net(1), 'kd', cache_teacher=True)
    calls.clear()
    quiet_fit(learn, 2)
    assert sum(calls) == len(dls.train_ds)  # one pass over the training set, then lookups only
    quiet_fit(learn, 1)
    assert sum(calls) == len(dls.train_ds)
    learn.dls = make_dls(counts=[30, 20, 10, 5, 5], seed=1)
    quiet_fit(learn, 1)
    assert sum(calls) == len(dls.train_ds) + 70


def test_la_with_an_empty_class_stays_finite():
    dls = make_dls()
    learn = distill_learner(dls, None, net(1), 'la', class_counts=[40, 20, 10, 6, 0])
    quiet_fit(learn)
    assert np.isfinite(np.array(learn.recorder.values, dtype=float)).all()


def test_groups_and_counts_resolution_orders():
    dls = make_dls()
    g = torch.tensor([0, 0, 1, 1, 1])
    assert resolve_groups(dls, groups=g)[0] is None and torch.equal(resolve_groups(dls, groups=g)[1], g)
    assert resolve_groups(dls, class_counts=[1, 2, 3, 4, 5])[0] == [1, 2, 3, 4, 5]
    assert torch.equal(resolve_groups(dls, class_counts=[1, 2, 3, 4, 5])[1], class_groups([1, 2, 3, 4, 5]))
    dls.class_counts = [9, 9, 9, 9, 1]
    assert class_counts_of(dls) == [9, 9, 9, 9, 1]
    del dls.class_counts
    assert class_counts_of(dls) == COUNTS
    assert torch.equal(resolve_groups(dls, n_groups=2)[1], class_groups(COUNTS, 2))


def test_torch_tensor_dataset_labels_are_counted():
    from torch.utils.data import TensorDataset
    from fastai.data.load import DataLoader
    from fastai.data.core import DataLoaders
    y = torch.tensor([0] * 5 + [1] * 3 + [2])
    ds = TensorDataset(torch.randn(9, 3, 4, 4), y)
    dls = DataLoaders(DataLoader(ds, bs=4), DataLoader(ds, bs=4))
    dls.c = 3
    assert class_counts_of(dls) == [5, 3, 1]

def test_saved_teacher_gets_the_usual_file_mode(tmp_path):
    import os, stat
    from ltkd_fastai.distill import save_teacher
    from ltkd_fastai.models import get_model
    p = save_teacher(get_model('cnn_tiny', 10, in_chans=1), tmp_path / 't.pth')
    um = os.umask(0); os.umask(um)
    assert stat.S_IMODE(os.stat(p).st_mode) == 0o666 & ~um


# ---------------------------------------------------------------- long-tailed baselines: the training loss from scratch
def _kl64(p, q):
    "batch-mean KL(p || q) of float64 probability rows"
    return float((p * (p.log() - q.log())).sum(1).mean())


@pytest.mark.parametrize('method', ['bkd', 'dive', 'la_kd'])
def test_long_tailed_baselines_train_on_their_paper_formula(method):
    "The loss the optimiser sees, recomputed in float64 from the papers' formulas (not from the library's losses)"
    learn, seen = first_batch(method)
    xb, y, s, loss = seen[0]
    with torch.no_grad(): t = learn.distill.teacher(xb).double()
    s = s.double()
    n = torch.tensor(COUNTS, dtype=torch.float64)
    log_pi = (n / n.sum()).log()
    ce = lambda z: float(F.cross_entropy(z, y))
    sm = lambda z, T: (z / T).softmax(1)
    if method == 'bkd':   # Zhang et al. 2021: CE + T^2 KL(norm(w * p_T) || p_S), w effective-number weights summing to C
        w = (1 - 0.9999) / (1 - 0.9999 ** n); w = w / w.sum() * C
        q = sm(t, 2.) * w; q = q / q.sum(1, keepdim=True)
        ref = ce(s) + 4 * _kl64(q, sm(s, 2.))
    elif method == 'dive':  # He et al. 2021: 0.5 BSCE + 0.5 T^2 KL(norm(p_T^0.5) || p_S), T = 3
        q = sm(t, 3.) ** 0.5; q = q / q.sum(1, keepdim=True)
        ref = 0.5 * ce(s + log_pi) + 0.5 * 9 * _kl64(q, sm(s, 3.))
    else:                   # 0.1 CE(s + log pi) + 0.9 T^2 KL(p_T || softmax((s + log pi)/T)), T = 4
        ref = 0.1 * ce(s + log_pi) + 0.9 * 16 * _kl64(sm(t, 4.), sm(s + log_pi, 4.))
    assert loss == pytest.approx(ref, rel=1e-5)


# ---------------------------------------------------------------- torch.compile
def test_torch_compile_inductor_trains_like_eager(tmp_path):
    "The default (inductor) backend, which compiles C++ here (about 30 s): the same losses as the plain fit (float32 tolerance), plain state_dict keys, export and reload"
    def fit(**kw):
        learn = distill_learner(make_dls(), net(0), net(1), 'ltkd', **kw)
        quiet_fit(learn, 2)
        return learn, torch.tensor([float(v) for v in learn.recorder.losses])
    plain, a = fit()
    comp, b = fit(torch_compile=True)
    assert comp.model._compiled_call_impl is not None and comp.distill.teacher._compiled_call_impl is not None
    torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5 * float(a.abs().max()))
    assert list(comp.model.state_dict()) == list(plain.model.state_dict())
    comp.export(tmp_path / 's.pkl')
    back = load_learner(tmp_path / 's.pkl')
    torch.testing.assert_close(back.get_preds(dl=comp.dls.valid)[0], comp.get_preds()[0])
