"Feature methods on the papers' zoo pairs and on plain timm models: one short fit each through `distill_learner`."
import warnings
import pytest
import torch
from fastai.callback.core import Callback
from fastai.data.core import Datasets
from fastai.data.transforms import ItemGetter
from fastai.torch_core import set_seed

from ltkd_fastai.distill import distill_learner
from ltkd_fastai.models import get_model

PAIRS = [('resnet32x4', 'resnet8x4'), ('wrn_40_2', 'wrn_16_2'), ('vgg13_cifar', 'vgg8_cifar'),
         ('resnet32x4', 'shufflenetv1_cifar'), ('wrn_40_2', 'shufflenetv1_cifar'), ('vgg13_cifar', 'mobilenetv2_cifar')]
METHODS = ['fitnet', 'reviewkd', 'catkd']
C = 5


def tiny_dls(size=32, n=8, bs=4):
    set_seed(0)
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(2 * n, 3, size, size, generator=g), torch.arange(2 * n) % C
    dls = Datasets(list(zip(x, y)), tfms=[[ItemGetter(0)], [ItemGetter(1)]], splits=[range(n), range(n, 2 * n)]).dataloaders(bs=bs, num_workers=0)
    dls.c = C
    return dls


def one_fit(dls, teacher, student, method, cbs=None):
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    learn = distill_learner(dls, teacher, student, method, class_counts=[2] * C)
    conn = learn.distill.connector
    c0 = None if conn is None else [p.clone() for p in conn.parameters()]
    with warnings.catch_warnings(), learn.no_logging(), learn.no_bar():
        warnings.simplefilter('ignore')
        learn.fit(1, 1e-3, cbs=cbs)
    assert all(torch.equal(before[k], v) for k, v in teacher.state_dict().items()), 'the teacher changed'
    if conn is not None:
        assert any(not torch.equal(a, b) for a, b in zip(c0, conn.parameters())), 'the connector did not train'
        ids = {id(p) for p in learn.model.parameters()}
        assert not any(id(p) in ids for p in conn.parameters()), 'the connector is part of the student'
    assert all(torch.isfinite(torch.tensor(v)) for v in learn.recorder.values[-1][:2] if v is not None)
    return learn


@pytest.mark.parametrize('t_arch, s_arch', PAIRS)
def test_feature_methods_train_on_the_papers_pairs(t_arch, s_arch):
    dls = tiny_dls()
    for m in METHODS:
        torch.manual_seed(0)
        learn = one_fit(dls, get_model(t_arch, C), get_model(s_arch, C), m)
        s_names, t_names = learn.distill.features
        assert len(s_names) == len(t_names) >= 1, (m, s_names, t_names)
    assert learn.distill_config['weight'] == 15.   # CAT-KD's default
    rk = distill_learner(dls, get_model(t_arch, C), get_model(s_arch, C), 'reviewkd')
    assert rk.distill_config['weight'] == (5. if (t_arch, s_arch) == ('resnet32x4', 'resnet8x4') else 1.)  # mdistiller's pair weight


def test_feature_methods_train_with_plain_timm_models():
    dls = tiny_dls(size=64)
    import timm
    for m in METHODS:
        torch.manual_seed(0)
        one_fit(dls, timm.create_model('resnet18', num_classes=C), timm.create_model('resnet10t', num_classes=C), m)


class CPUAutocast(Callback):
    "bf16 autocast around the forward pass on the CPU (what `to_fp16`/`to_bf16` do on a GPU)"
    order = 10
    def before_batch(self): self.ctx = torch.autocast('cpu', dtype=torch.bfloat16); self.ctx.__enter__()
    def after_pred(self): self.ctx.__exit__(None, None, None)


@pytest.mark.parametrize('method', METHODS)
def test_feature_methods_under_bf16_autocast(method):
    "Mixed precision: features come in bf16, the loss is computed in float32 and is finite"
    dls = tiny_dls()
    seen = []
    class Grab(Callback):
        order = 30
        def after_loss(self):
            if self.training: seen.append(self.loss)
    learn = one_fit(dls, get_model('resnet32x4', C), get_model('resnet8x4', C), method, cbs=[CPUAutocast(), Grab()])
    assert seen and all(l.dtype == torch.float32 and torch.isfinite(l) for l in seen)
