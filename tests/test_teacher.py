"Bad input, checkpoint round trips over the zoo, atomic writes and the step schedule of `ltkd_fastai.teacher`."
import os
import pytest
import torch
import torch.nn as nn
from fastai.data.core import Datasets
from fastai.data.transforms import ItemGetter
from fastai.torch_core import set_seed

from ltkd_fastai.teacher import teacher_learner, fit_paper, paper_milestones, MultiStepSchedule, sgd_paper
from ltkd_fastai.distill import save_teacher, load_teacher, distill_learner
from ltkd_fastai.models import get_model

C = 4


def make_dls(chans=3, size=8, seed=0):
    set_seed(seed)
    g = torch.Generator().manual_seed(seed)
    y = torch.tensor([0] * 12 + [1] * 8 + [2] * 5 + [3] * 3)
    yv = torch.arange(8) % C
    x, xv = torch.randn(len(y), chans, size, size, generator=g), torch.randn(8, chans, size, size, generator=g)
    items = list(zip(x, y)) + list(zip(xv, yv))
    ds = Datasets(items, tfms=[[ItemGetter(0)], [ItemGetter(1)]], splits=[range(len(y)), range(len(y), len(items))])
    dls = ds.dataloaders(bs=8, num_workers=0)
    dls.c = C
    return dls


@pytest.mark.parametrize('arch', ['resnet8', 'wrn_16_1', 'mobilenetv2_cifar', 'shufflenetv1_cifar', 'vgg8_cifar'])
@pytest.mark.parametrize('chans', [1, 3])
def test_checkpoint_round_trip_over_the_zoo(tmp_path, arch, chans):
    torch.manual_seed(0)
    m = get_model(arch, C, **({} if chans == 3 else dict(in_chans=chans))).eval()
    with torch.no_grad():  # non-trivial batch-norm statistics, so buffers are checked too
        for b in m.modules():
            if isinstance(b, nn.BatchNorm2d): b.running_mean.uniform_(-1, 1); b.running_var.uniform_(0.5, 2)
    p = save_teacher(m, tmp_path / 't.pth')  # arch read from the timm config
    m2 = load_teacher(p)
    x = torch.randn(2, chans, 32, 32)
    with torch.no_grad(): torch.testing.assert_close(m2(x), m(x))
    assert not m2.training


def test_save_is_atomic_when_the_replace_fails(tmp_path, monkeypatch):
    m = get_model('resnet8', C)
    p = save_teacher(m, tmp_path / 't.pth')
    before = p.read_bytes()
    def fail(*a, **k): raise OSError('disk full')
    monkeypatch.setattr(os, 'replace', fail)
    with pytest.raises(OSError, match='disk full'): save_teacher(get_model('resnet8', C), p)
    assert p.read_bytes() == before and os.listdir(tmp_path) == ['t.pth']


def test_checkpoint_bad_input(tmp_path):
    with pytest.raises(ValueError, match='nn.Module or a Learner'): save_teacher('resnet8', tmp_path / 't.pth')
    with pytest.raises(ValueError, match='pass arch='): save_teacher(nn.Sequential(nn.Linear(3, C)), tmp_path / 't.pth')
    (tmp_path / 'junk.pth').write_bytes(os.urandom(64))
    with pytest.raises(ValueError, match='not a teacher checkpoint'): load_teacher(tmp_path / 'junk.pth')
    with pytest.raises(FileNotFoundError): load_teacher(tmp_path / 'nothing.pth')


def test_teacher_learner_bad_input():
    dls = make_dls()
    with pytest.raises(ValueError, match='model name or an nn.Module'): teacher_learner(dls, 3)
    with pytest.raises(ValueError, match='unknown model'): teacher_learner(dls, 'resnet9000')
    with pytest.raises(ValueError, match='outputs shape'): teacher_learner(dls, get_model('resnet8', C + 1))
    with pytest.raises(ValueError, match='n_epoch'): paper_milestones(0)


def test_teacher_learner_single_channel_and_distill_from_its_learner_and_pkl(tmp_path):
    dls = make_dls(chans=1)
    tl = teacher_learner(dls, 'cnn_tiny', path=tmp_path)
    assert tl.model.body[0][0].in_channels == 1 and tl.arch == 'cnn_tiny'
    with tl.no_bar(), tl.no_logging(): tl.fit(1, 1e-2)
    xb, _ = dls.valid.one_batch()
    tl.model.eval()
    with torch.no_grad(): ref = tl.model(xb)
    sl = distill_learner(dls, tl, 'cnn_tiny', 'kd')  # teacher given as its Learner
    assert sl.distill.teacher is tl.model
    tl.export('teacher.pkl')
    sl = distill_learner(dls, tmp_path / 'teacher.pkl', 'cnn_tiny', 'kd')  # ... or as an exported Learner
    with torch.no_grad(): torch.testing.assert_close(sl.distill.teacher(xb), ref)


@pytest.mark.parametrize('milestones, n_epoch', [([3, 5, 9], 12), ([0, 2], 4), ([7], 7), ([2, 2, 4], 6)])
def test_multistep_schedule_matches_torch(milestones, n_epoch):
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.05)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones, gamma=0.1)
    ms = MultiStepSchedule(0.05, milestones, 0.1)
    for e in range(n_epoch):
        assert ms.lr_at(e) == pytest.approx(opt.param_groups[0]['lr'], rel=1e-12)
        opt.step(); sched.step()


def test_fit_paper_lr_for_a_shufflenet_student():
    dls = make_dls(size=16)
    sl = distill_learner(dls, get_model('resnet8', C), 'shufflenetv1_cifar', 'kd', lr=1.)
    with sl.no_bar(), sl.no_logging(): fit_paper(sl, 2)
    assert sl.recorder.lrs[0] == pytest.approx(0.01)   # MobileNet/ShuffleNet students start at 0.01
    assert sl.opt.hypers[0]['mom'] == 0.9 and sl.opt.hypers[0]['wd'] == 5e-4
