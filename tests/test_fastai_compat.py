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


# ------------------------------------------------ after training: export, load_learner, predict (issue: both environments)
def _write_png_folders(root, n_train=(12, 9, 6), n_test=4, size=16, seed=0):
    "A tiny image-folder dataset, <root>/{train,test}/<class>/<i>.png, each class a distinct colour pattern"
    import numpy as np
    from PIL import Image
    rng = np.random.default_rng(seed)
    classes = ['ankle_boot', 'bag', 'coat']
    base = rng.integers(0, 256, size=(len(classes), size, size, 3))
    for split, counts in (('train', n_train), ('test', [n_test] * len(classes))):
        for c, name in enumerate(classes):
            (root / split / name).mkdir(parents=True, exist_ok=True)
            for i in range(counts[c]):
                im = np.clip(base[c] + rng.normal(0, 20, base[c].shape), 0, 255).astype('uint8')
                Image.fromarray(im).save(root / split / name / f'{i}.png')
    return classes


def _image_dls(root, vocab=None):
    from fastai.vision.all import DataBlock, ImageBlock, CategoryBlock, get_image_files, parent_label, Resize
    from ltkd_fastai.longtail import LongTailSplitter
    dblock = DataBlock(blocks=(ImageBlock, CategoryBlock(vocab=vocab, sort=vocab is None)), get_items=get_image_files, get_y=parent_label,
                       splitter=LongTailSplitter(imb_factor=2), item_tfms=Resize(16))
    return dblock.dataloaders(root, bs=8, num_workers=0)


def test_image_folder_student_exports_loads_and_predicts(tmp_path):
    "An image-folder DataBlock student: export, load_learner, predict, get_preds, show_results, interpretation, group_report"
    import matplotlib; matplotlib.use('Agg')
    from fastai.vision.all import vision_learner, load_learner, ClassificationInterpretation, get_image_files
    from torchvision.models import resnet18
    from ltkd_fastai.all import distill_learner, group_report
    classes = _write_png_folders(tmp_path / 'data')
    dls = _image_dls(tmp_path / 'data')
    assert list(dls.vocab) == classes
    torch.manual_seed(0)
    teacher = vision_learner(dls, resnet18, pretrained=False)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        with teacher.no_logging(), teacher.no_bar(): teacher.fit(1, 1e-3)
        learn = distill_learner(dls, teacher, 'cnn_tiny', method='ltkd', path=tmp_path)
        with learn.no_logging(), learn.no_bar(): learn.fit(1, 1e-2)
    learn.export('student.pkl')
    l2 = load_learner(tmp_path / 'student.pkl')
    assert l2.distill.teacher is None
    f = sorted(get_image_files(tmp_path / 'data' / 'test'))[0]
    with l2.no_bar(), learn.no_bar():
        cls, idx, probs = l2.predict(f)
        cls1, idx1, probs1 = learn.predict(f)
    assert cls == cls1 and cls in classes and int(idx) == classes.index(cls)
    torch.testing.assert_close(probs, probs1)                      # the exported student is the trained student
    files = sorted(get_image_files(tmp_path / 'data' / 'test'))
    dl = l2.dls.test_dl(files, with_labels=True)
    with l2.no_bar(): preds, targs = l2.get_preds(dl=dl)
    assert preds.shape == (len(files), 3) and torch.allclose(preds.sum(1), torch.ones(len(files)))
    rep = group_report(l2, dl=dl)                                  # learn.groups travelled with the export
    assert rep.loc['all', 'valid'] == len(files)
    with l2.no_bar():
        l2.dls.valid = dl                                          # show_results / interpretation read dls.valid
        l2.show_results(max_n=3)
        interp = ClassificationInterpretation.from_learner(l2)
    assert interp.confusion_matrix().sum() == len(files)


def test_teacher_with_another_class_order_is_refused(tmp_path):
    from fastai.vision.all import vision_learner
    from torchvision.models import resnet18
    from ltkd_fastai.all import distill_learner, ReorderOutputs
    classes = _write_png_folders(tmp_path / 'data')
    dls = _image_dls(tmp_path / 'data')
    rdls = _image_dls(tmp_path / 'data', vocab=classes[::-1])     # the same images, labels in reversed order
    teacher = vision_learner(rdls, resnet18, pretrained=False)
    with pytest.raises(ValueError, match=r"another class order(.|\n)*teacher classes: \['coat', 'bag', 'ankle_boot'\]"):
        distill_learner(dls, teacher, 'cnn_tiny', method='kd')
    learn = distill_learner(dls, teacher, 'cnn_tiny', method='kd', reorder_classes=True)
    t = learn.distill.teacher
    assert isinstance(t, ReorderOutputs) and t.perm.tolist() == [2, 1, 0]
    x = dls.one_batch()[0][:2]
    teacher.model.eval()
    with torch.no_grad(): torch.testing.assert_close(t(x), teacher.model(x).flip(1))
