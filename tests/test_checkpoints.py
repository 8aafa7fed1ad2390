"Teacher files people have (`load_teacher`, `distill_learner(teacher_weights=)`) and class-order checks, end to end."
import warnings
import pytest
import torch
import torch.nn as nn
from fastai.learner import Learner
from fastai.losses import CrossEntropyLossFlat

from ltkd_fastai.checkpoints import load_teacher, save_teacher, read_weights, align_classes
from ltkd_fastai.data import digits_lt
from ltkd_fastai.distill import distill_learner
from ltkd_fastai.models import get_model


@pytest.fixture(scope='module')
def dls():
    return digits_lt(imb_factor=10, bs=64)


@pytest.fixture(scope='module')
def trained(dls):
    "A `cnn_tiny` teacher (1 input channel, 10 classes) trained for one epoch, with its optimizer"
    torch.manual_seed(0)
    learn = Learner(dls, get_model('cnn_tiny', 10, in_chans=1), loss_func=CrossEntropyLossFlat())
    with learn.no_logging(), learn.no_bar(): learn.fit(1, 1e-2)
    learn.model.eval()
    return learn


def _files(learn, d):
    "The four kinds of teacher file of issue 12 (plus fastai's without optimizer state), written from one model"
    sd = learn.model.state_dict()
    learn.path = d
    out = {'state_dict': d / 'plain.pth', 'timm': d / 'timm.pth', 'dataparallel': d / 'dp.pth'}
    torch.save(sd, out['state_dict'])
    torch.save({'state_dict': sd, 'epoch': 1, 'arch': 'cnn_tiny', 'best_acc1': 0.5}, out['timm'])
    torch.save({f'module.{k}': v for k, v in sd.items()}, out['dataparallel'])
    out['fastai_with_opt'] = learn.save('with_opt', with_opt=True)
    out['fastai_no_opt'] = learn.save('no_opt', with_opt=False)
    return out


def test_every_teacher_file_loads_and_distils(dls, trained, tmp_path):
    x = dls.one_batch()[0][:8].cpu()
    with torch.no_grad(): ref = trained.model(x)
    files = _files(trained, tmp_path)
    assert read_weights(files['fastai_with_opt'])[1] == 'fastai'
    assert read_weights(files['timm'])[1] == 'nested'
    for kind, f in files.items():
        m = load_teacher(f, arch='cnn_tiny')                     # n_out and in_chans read from the weights
        with torch.no_grad(): torch.testing.assert_close(m(x), ref, rtol=0, atol=0, msg=kind)
        learn = distill_learner(dls, 'cnn_tiny', 'cnn_tiny', method='ltkd', teacher_weights=f)
        t = learn.distill.teacher
        before = {k: v.clone() for k, v in t.state_dict().items()}
        with torch.no_grad(): torch.testing.assert_close(t.eval()(x), ref, rtol=0, atol=0, msg=kind)
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            with learn.no_logging(), learn.no_bar(): learn.fit(1, 1e-2)
        assert all(torch.equal(before[k], v) for k, v in t.state_dict().items()), kind
        assert 0 <= learn.recorder.values[-1][2] <= 1


def test_wrong_files_are_refused_with_the_keys(dls, trained, tmp_path):
    f = _files(trained, tmp_path)['state_dict']
    with pytest.raises(ValueError, match=r"do not fit cnn_small; missing keys: .*unexpected keys: .*another architecture"):
        load_teacher(f, arch='cnn_small')
    with pytest.raises(ValueError, match=r"shape mismatches: .*\(8, 1, 3, 3\) in the file"):
        load_teacher(f, arch='cnn_tiny', in_chans=3)             # weights of a 1-channel model
    with pytest.raises(ValueError, match='has 10 outputs but the model was built with n_out=7'):
        load_teacher(f, arch='cnn_tiny', n_out=7)
    with pytest.raises(ValueError, match='has 10 outputs but the model was built with n_out=7'):
        distill_learner(dls, 'cnn_tiny', 'cnn_tiny', teacher_weights=f, n_out=7, class_counts=[1] * 7)
    with pytest.raises(ValueError, match='pass arch='): load_teacher(f)
    with pytest.raises(FileNotFoundError): load_teacher(tmp_path / 'nope.pth', arch='cnn_tiny')
    with pytest.raises(ValueError, match='teacher_weights= goes with a teacher given as a zoo/timm name or an nn.Module'):
        distill_learner(dls, trained, 'cnn_tiny', teacher_weights=f)
    torch.save({'epoch': 3, 'lr': 0.1}, tmp_path / 'meta_only.pth')
    with pytest.raises(ValueError, match="holds no state_dict"): load_teacher(tmp_path / 'meta_only.pth', arch='cnn_tiny')
    (tmp_path / 'junk.pth').write_bytes(b'not a torch file')
    with pytest.raises(ValueError, match='weights_only=True'): load_teacher(tmp_path / 'junk.pth', arch='cnn_tiny')
    st = save_teacher(trained.model, tmp_path / 'st.pth', arch='cnn_tiny')
    with pytest.raises(ValueError, match="holds weights of 'cnn_tiny', not of arch='cnn_small'"):
        load_teacher(st, arch='cnn_small')


def test_weights_into_a_given_module_leave_it_untouched(dls, trained, tmp_path):
    f = _files(trained, tmp_path)['timm']
    mine = get_model('cnn_tiny', 10, in_chans=1)
    before = {k: v.clone() for k, v in mine.state_dict().items()}
    learn = distill_learner(dls, mine, 'cnn_tiny', method='kd', teacher_weights=f)
    assert learn.distill.teacher is not mine
    assert all(torch.equal(before[k], v) for k, v in mine.state_dict().items())
    x = dls.one_batch()[0][:4].cpu()
    with torch.no_grad(): torch.testing.assert_close(learn.distill.teacher.eval()(x), trained.model(x), rtol=0, atol=0)


def test_save_teacher_vocab_and_exported_learner_are_checked(dls, trained, tmp_path):
    vocab = [str(v) for v in dls.vocab] if getattr(dls, 'vocab', None) is not None else [str(i) for i in range(10)]
    dls.vocab = vocab
    try:
        shuffled = vocab[1:] + vocab[:1]
        p = save_teacher(trained.model, tmp_path / 'shuffled.pth', arch='cnn_tiny', vocab=shuffled)
        with pytest.raises(ValueError, match=r"another class order \(first difference at output 0\)"):
            distill_learner(dls, p, 'cnn_tiny', method='kd')
        learn = distill_learner(dls, p, 'cnn_tiny', method='kd', reorder_classes=True)
        x = dls.one_batch()[0][:4].cpu()
        with torch.no_grad():   # data class k (= vocab[k]) is the teacher's output shuffled.index(vocab[k])
            torch.testing.assert_close(learn.distill.teacher.eval()(x), trained.model(x)[:, [shuffled.index(c) for c in vocab]])
        ok = save_teacher(trained.model, tmp_path / 'ok.pth', arch='cnn_tiny', vocab=vocab)
        assert load_teacher(ok, with_meta=True)[1]['vocab'] == vocab
        distill_learner(dls, ok, 'cnn_tiny', method='kd')             # same order: accepted
        other = save_teacher(trained.model, tmp_path / 'other.pth', arch='cnn_tiny', vocab=[f'c{i}' for i in range(10)])
        with pytest.raises(ValueError, match="not the same classes"):
            distill_learner(dls, other, 'cnn_tiny', method='kd', reorder_classes=True)
    finally:
        del dls.vocab


def test_align_classes_bad_input():
    with pytest.raises(ValueError, match='repeat a name'): align_classes(nn.Linear(2, 2), ['a', 'a'], ['a', 'b'])


def test_a_feature_students_file_loads_as_a_plain_model(dls, trained, tmp_path):
    "learn.save of a FitNet student holds its connector (to resume); read as a teacher file, the connector is left out"
    learn = distill_learner(dls, trained.model, 'cnn_tiny', method='fitnet', path=tmp_path)
    f = learn.save('fitnet_student')
    saved = torch.load(f, weights_only=False)
    saved = saved.get('model', saved) if 'opt' in saved else saved        # no optimizer yet: a plain state_dict
    assert any(k.startswith('distill_connector.') for k in saved)
    m = load_teacher(f, arch='cnn_tiny')
    assert set(m.state_dict()) == {k for k in saved if not k.startswith('distill_connector.')}
    p = save_teacher(learn, tmp_path / 'student_as_teacher.pth')
    assert not any(k.startswith('distill_connector.') for k in torch.load(p, weights_only=True)['state_dict'])
