"""The library must import and train on the fastai/fastcore pair users get today.

The dev environment pins fastcore<2 (nbdev 2.4.14 needs it), so fastai stays at 2.8.7 there. Users install
the newest fastai, which needs fastcore 2.x. CI runs this file a second time in a virtual environment that
has the newest fastai and fastcore (see `.ci/run`, `LTKD_EXPECT_FASTCORE2=1`).
"""
import os, warnings
import pytest, torch
import fastcore, fastai

def test_versions_are_the_expected_pair():
    major = int(fastcore.__version__.split('.')[0])
    if os.environ.get('LTKD_EXPECT_FASTCORE2') == '1': assert major >= 2, fastcore.__version__
    print(f"fastai {fastai.__version__}, fastcore {fastcore.__version__}")

def test_import_all_and_train_ltkd_on_digits():
    from ltkd_fastai.all import digits_lt, distill_learner, get_model, group_names
    torch.manual_seed(0)
    dls = digits_lt(imb_factor=10, bs=64)
    teacher = get_model('cnn_small', 10, in_chans=1)
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    learn = distill_learner(dls, teacher, get_model('cnn_tiny', 10, in_chans=1), method='ltkd')
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        learn.fit_one_cycle(1, 1e-2)
    names = list(learn.recorder.metric_names)
    for col in ['accuracy', *group_names(3)]: assert col in names, names
    res = dict(zip(['valid_loss', *[m.name for m in learn.metrics]], learn.validate()))
    for col in ['accuracy', *group_names(3)]: assert 0 <= res[col] <= 1, res
    after = teacher.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before), "the teacher changed during distillation"
    assert not any(p is q for p in learn.model.parameters() for q in teacher.parameters())
