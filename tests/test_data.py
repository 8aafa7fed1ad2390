"""Tests of `ltkd_fastai.data` that the notebook does not hold: folder datasets (TinyImageNet, ImageNet, the
ImageNet-LT lists, fastai's CIFAR PNGs, torchvision's Fashion-MNIST layout) written to disk in their real formats,
where data is looked for, the missing-data errors, bad input, and property tests of the batch augmentation."""
import gzip, pickle, struct
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings, strategies as st
from PIL import Image

from ltkd_fastai.data import *
from ltkd_fastai.data import _ImageRows
from ltkd_fastai.longtail import long_tail_counts, class_groups


# ---------------------------------------------------------------- helpers writing real on-disk formats
def _colour(c):
    "A distinct solid colour per class, so labels can be checked from the decoded pixels"
    return (40 * c + 20, 255 - 50 * c, (97 * c) % 256)


def _jpeg(fn, c, size=16):
    fn.parent.mkdir(parents=True, exist_ok=True)
    Image.new('RGB', (size, size), _colour(c)).save(fn, quality=95)


def _check_colours(dl, n_batches=1):
    "Every image of the first batches of `dl` shows its class's colour: labels follow their images"
    norm = dl.after_batch.fs[-1]
    mean, std = [torch.as_tensor(v).view(1, -1, 1, 1) for v in (norm.mean, norm.std)]
    for k, (x, y) in enumerate(dl):
        img = (x.cpu() * std + mean) * 255                         # back to pixel values
        centre = img[:, :, 6:10, 6:10].mean((2, 3))                # the centre survives crops and flips
        want = torch.tensor([_colour(int(c)) for c in y], dtype=torch.float32)
        assert (centre - want).abs().max() < 6, (centre, want)
        if k + 1 >= n_batches: break


@pytest.fixture
def tiny_root(tmp_path):
    "A 4-class tiny-imagenet-200 folder: 12 training and 3 validation JPEGs per class"
    root = tmp_path / 'tiny-imagenet-200'
    wnids = ['n0003', 'n0001', 'n0004', 'n0002']                   # wnids.txt is not sorted; classes are
    root.mkdir()
    (root / 'wnids.txt').write_text('\n'.join(wnids) + '\n')
    ann = []
    for w in wnids:
        c = sorted(wnids).index(w)
        for k in range(12): _jpeg(root / 'train' / w / 'images' / f'{w}_{k}.JPEG', c)
        (root / 'train' / w / f'{w}_boxes.txt').write_text('')
        for k in range(3):
            fn = f'val_{w}_{k}.JPEG'
            _jpeg(root / 'val' / 'images' / fn, c)
            ann.append(f'{fn}\t{w}\t0\t0\t15\t15')
    (root / 'val' / 'val_annotations.txt').write_text('\n'.join(ann) + '\n')
    return root


@pytest.fixture
def imagenet_root(tmp_path):
    "An ImageFolder ImageNet: train/<wnid>/ with 10, 4 and 6 JPEGs, val/<wnid>/ with 2 each"
    root = tmp_path / 'imagenet'
    for c, (w, n) in enumerate(zip(['n01', 'n02', 'n03'], [10, 4, 6])):
        for k in range(n): _jpeg(root / 'train' / w / f'{w}_{k}.JPEG', c)
        for k in range(2): _jpeg(root / 'val' / w / f'ILSVRC2012_val_{c}{k}.JPEG', c)
    return root


# ---------------------------------------------------------------- TinyImageNet
def test_tiny_imagenet_lt(tiny_root):
    dls = tiny_imagenet_lt(4, path=tiny_root.parent, size=16, pad=2, bs=8, num_workers=0, device='cpu', download=False)
    assert dls.source == tiny_root
    assert list(dls.vocab) == ['n0001', 'n0002', 'n0003', 'n0004']
    assert dls.class_counts == long_tail_counts(12, 4, 4) == [12, 7, 4, 3]
    assert torch.equal(dls.groups, class_groups(dls.class_counts))
    assert np.bincount([int(y) for _, y in dls.valid_ds]).tolist() == [3, 3, 3, 3]   # the test set stays balanced
    assert np.bincount([int(y) for _, y in dls.train_ds], minlength=4).tolist() == dls.class_counts
    x, y = dls.train.one_batch()
    assert x.shape == (8, 3, 16, 16) and x.dtype == torch.float32
    _check_colours(dls.valid, 2)
    _check_colours(dls.train, 2)


def test_tiny_imagenet_augments_train_only(tiny_root):
    dls = tiny_imagenet_lt(4, path=tiny_root, size=16, pad=4, bs=8, num_workers=0, device='cpu', download=False)
    assert [type(t).__name__ for t in dls.train.after_batch.fs] == ['PadCropFlip', 'IntToFloatTensor', 'Normalize']
    v1, v2 = dls.valid.one_batch()[0], dls.valid.one_batch()[0]
    assert torch.equal(v1, v2)                                      # validation: deterministic
    train = dls.train.new(shuffle=False, drop_last=False)
    t1, t2 = train.one_batch()[0], train.one_batch()[0]
    assert not torch.equal(t1, t2)                                  # training: random crops
    lo = (0 - torch.tensor(TINY_IMAGENET_STATS[0])) / torch.tensor(TINY_IMAGENET_STATS[1])
    assert torch.isclose(t1, lo.view(1, 3, 1, 1).expand_as(t1)).any()  # zero padding came in


def test_tiny_imagenet_class_order_and_balanced(tiny_root):
    d = tiny_imagenet_lt(4, path=tiny_root, size=16, class_order=['n0004', 'n0002', 'n0001', 'n0003'],
                         num_workers=0, device='cpu', download=False)
    assert d.class_counts == [4, 7, 3, 12]
    d = tiny_imagenet_lt(4, path=tiny_root, size=16, class_order=[3, 1, 0, 2], num_workers=0, device='cpu', download=False)
    assert d.class_counts == [4, 7, 3, 12]
    d = tiny_imagenet_lt(None, path=tiny_root, size=16, num_workers=0, device='cpu', download=False)
    assert d.class_counts == [12] * 4 and len(d.valid_ds) == 12


def test_tiny_imagenet_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match='tiny-imagenet-200') as e:
        tiny_imagenet_lt(path=tmp_path, download=False)
    assert str(tmp_path) in str(e.value) and 'download=False' in str(e.value)


def test_tiny_imagenet_bad_annotation(tiny_root):
    with open(tiny_root / 'val' / 'val_annotations.txt', 'a') as f: f.write('val_x.JPEG\tn9999\t0\t0\t1\t1\n')
    with pytest.raises(ValueError, match='n9999'): tiny_imagenet_items(tiny_root)


# ---------------------------------------------------------------- ImageNet
def test_imagenet_lt_profile(imagenet_root):
    # gamma 2 from n_max = 10 (the largest class) asks [10, 7, 5]: the 4-image class is short and is clipped
    with pytest.warns(UserWarning, match='clipped 1 class'):
        dls = imagenet_lt(2, path=imagenet_root, size=16, min_scale=0.5, bs=4, num_workers=0, device='cpu')
    assert dls.class_counts == [10, 4, 5]
    assert list(dls.vocab) == ['n01', 'n02', 'n03'] and len(dls.valid_ds) == 6
    assert dls.train.one_batch()[0].shape == (4, 3, 16, 16)
    _check_colours(dls.valid, 1)
    with pytest.raises(ValueError, match='fewer items'):
        imagenet_lt(2, path=imagenet_root, size=16, on_short='error', num_workers=0, device='cpu')


def test_imagenet_lt_lists(imagenet_root, tmp_path):
    lists = tmp_path / 'lists'
    lists.mkdir()
    train = [f'train/n01/n01_{k}.JPEG 0' for k in range(5)] + ['train/n02/n02_0.JPEG 1'] + \
            [f'train/n03/n03_{k}.JPEG 2' for k in range(3)]
    test = [f'val/n0{c+1}/ILSVRC2012_val_{c}{k}.JPEG {c}' for c in range(3) for k in range(2)]
    (lists / 'ImageNet_LT_train.txt').write_text('\n'.join(train) + '\n')
    (lists / 'ImageNet_LT_test.txt').write_text('\n'.join(test) + '\n')
    dls = imagenet_lt(path=imagenet_root, lists=lists, size=16, bs=3, num_workers=0, device='cpu')
    assert dls.class_counts == [5, 1, 3] and list(dls.vocab) == ['n01', 'n02', 'n03']
    assert len(dls.train_ds) == 9 and len(dls.valid_ds) == 6
    _check_colours(dls.valid, 2)
    (lists / 'ImageNet_LT_test.txt').write_text('val/n01/x.JPEG\n')
    with pytest.raises(ValueError, match="line 1"): imagenet_lt(path=imagenet_root, lists=lists, num_workers=0)


def test_imagenet_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match='image-net.org'): imagenet_lt(path=tmp_path)


# ---------------------------------------------------------------- CIFAR
def _write_cifar_png(root, n_classes=10, n_train=6, n_test=2):
    rng = np.random.RandomState(0)
    names = [f'class{c}' for c in range(n_classes)]
    imgs = {}
    for split, n in (('train', n_train), ('test', n_test)):
        for c, nm in enumerate(names):
            for k in range(n):
                a = rng.randint(0, 256, (32, 32, 3)).astype(np.uint8)
                fn = root / 'cifar10' / split / nm / f'{k}_{nm}.png'
                fn.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(a).save(fn)
                imgs[fn] = a
    return imgs


def test_cifar_png_layout(tmp_path):
    imgs = _write_cifar_png(tmp_path)
    x_tr, y_tr, x_te, y_te, classes = read_cifar(tmp_path, 10)
    assert classes == [f'class{c}' for c in range(10)]
    assert x_tr.shape == (60, 3, 32, 32) and x_te.shape == (20, 3, 32, 32)
    assert np.bincount(y_tr).tolist() == [6] * 10 and np.bincount(y_te).tolist() == [2] * 10
    fn = tmp_path / 'cifar10' / 'train' / 'class3' / '1_class3.png'
    k = sorted(p for p in imgs if p.parts[-3] == 'train').index(fn)
    assert np.array_equal(x_tr[k], imgs[fn].transpose(2, 0, 1)) and y_tr[k] == 3
    dls = cifar_lt(10, imb_factor=6, path=tmp_path, download=False, device='cpu')
    assert dls.class_counts == long_tail_counts(6, 10, 6) and dls.source == tmp_path


def test_cifar_pickle_under_data_paths(tmp_path, monkeypatch):
    d = tmp_path / 'cifar-10-batches-py'
    d.mkdir()
    rng = np.random.RandomState(1)
    for i in range(1, 6):
        with open(d / f'data_batch_{i}', 'wb') as f:
            pickle.dump({b'data': rng.randint(0, 256, (20, 3072)).astype(np.uint8), b'labels': list(range(10)) * 2}, f)
    with open(d / 'test_batch', 'wb') as f:
        pickle.dump({b'data': rng.randint(0, 256, (10, 3072)).astype(np.uint8), b'labels': list(range(10))}, f)
    monkeypatch.setenv('LTKD_DATA', str(tmp_path))
    assert data_paths()[0] == tmp_path
    assert find_cifar(10, download=False) == tmp_path
    dls = cifar_lt(10, imb_factor=10, download=False, device='cpu')   # found without a path
    assert dls.class_counts == long_tail_counts(10, 10, 10)
    assert dls.vocab[0] == '0'                                       # no batches.meta: labels name the classes


def test_cifar_missing(tmp_path):
    with pytest.raises(FileNotFoundError) as e: cifar_lt(100, path=tmp_path, download=False)
    msg = str(e.value)
    assert 'cifar-100-python' in msg and str(tmp_path) in msg and 'path=' in msg
    with pytest.raises(ValueError, match='10 or 100'): cifar_lt(20, path=tmp_path)


# ---------------------------------------------------------------- Fashion-MNIST
def _write_idx(fn, a):
    hdr = bytes([0, 0, 0x08, a.ndim]) + struct.pack(f'>{a.ndim}I', *a.shape)
    with gzip.open(fn, 'wb') as f: f.write(hdr + a.astype(np.uint8).tobytes())


def test_fashion_mnist_torchvision_layout(tmp_path):
    raw = tmp_path / 'FashionMNIST' / 'raw'
    raw.mkdir(parents=True)
    rng = np.random.RandomState(0)
    y_tr, y_te = np.repeat(np.arange(10), 20), np.repeat(np.arange(10), 3)
    x_tr = rng.randint(0, 256, (200, 28, 28))
    _write_idx(raw / 'train-images-idx3-ubyte.gz', x_tr); _write_idx(raw / 'train-labels-idx1-ubyte.gz', y_tr)
    _write_idx(raw / 't10k-images-idx3-ubyte.gz', rng.randint(0, 256, (30, 28, 28)))
    _write_idx(raw / 't10k-labels-idx1-ubyte.gz', y_te)
    assert find_fashion_mnist(tmp_path, download=False) == raw
    dls = fashion_mnist_lt(10, path=tmp_path, download=False, device='cpu')
    assert dls.class_counts == long_tail_counts(20, 10, 10)
    assert list(dls.vocab) == FASHION_MNIST_CLASSES and len(dls.valid_ds) == 30
    assert torch.equal(dls.train_ds[0][0][0], torch.as_tensor(x_tr[0], dtype=torch.uint8))  # class 0 keeps its first draw


@pytest.mark.skipif(not (FASHION_MNIST_SYSTEM / 'train-images-idx3-ubyte.gz').is_file(),
                    reason="Debian's dataset-fashion-mnist is not installed (apt install dataset-fashion-mnist)")
def test_fashion_mnist_debian_copy_is_found(monkeypatch, tmp_path):
    monkeypatch.setenv('LTKD_DATA', str(tmp_path))                   # an empty first folder: the search goes on
    monkeypatch.setattr('ltkd_fastai.data.data_paths', lambda: [tmp_path])
    assert find_fashion_mnist(download=False) == FASHION_MNIST_SYSTEM
    dls = fashion_mnist_lt(100, download=False, device='cpu')
    assert dls.source == FASHION_MNIST_SYSTEM
    assert dls.class_counts == long_tail_counts(6000, 10, 100) and sum(dls.class_counts) == 14886
    assert np.bincount([int(y) for _, y in dls.valid_ds]).tolist() == [1000] * 10


def test_fashion_mnist_missing(tmp_path, monkeypatch):
    monkeypatch.setattr('ltkd_fastai.data.FASHION_MNIST_SYSTEM', tmp_path / 'nothing')
    with pytest.raises(FileNotFoundError) as e: fashion_mnist_lt(path=tmp_path, download=False)
    assert 'apt install dataset-fashion-mnist' in str(e.value) and 'train-images-idx3-ubyte' in str(e.value)


# ---------------------------------------------------------------- bad input
def _arrays(n=30, c=3):
    rng = np.random.RandomState(0)
    return (rng.randint(0, 256, (n, 1, 4, 4)).astype(np.uint8), np.arange(n) % c,
            rng.randint(0, 256, (c, 1, 4, 4)).astype(np.uint8), np.arange(c))


def test_arrays_lt_bad_input():
    x, y, xt, yt = _arrays()
    with pytest.raises(ValueError, match='uint8'): arrays_lt(x.astype(np.float32), y, xt, yt)
    with pytest.raises(ValueError, match='30 images'): arrays_lt(x, y[:-1], xt, yt)
    with pytest.raises(ValueError, match=r'outside 0\.\.2'): arrays_lt(x, y, xt, yt + 1, classes=['a', 'b', 'c'])
    with pytest.raises(ValueError, match='shape'): arrays_lt(x[:, 0, 0], y, xt, yt)
    with pytest.raises(ValueError, match='test images'): arrays_lt(x, y, xt[:, :, :2], yt)
    with pytest.raises(ValueError, match="'z' is neither"): arrays_lt(x, y, xt, yt, classes=['a', 'b', 'c'], class_order=['z', 'a', 'b'])
    with pytest.raises(ValueError, match='imb_factor'): arrays_lt(x, y, xt, yt, imb_factor=0.5)
    with pytest.raises(ValueError, match='non-negative integer'): PadCropFlip(pad=-1)
    with pytest.raises(ValueError, match='n_test'): read_digits(n_test=200)
    with pytest.raises(ValueError, match='n_test'): digits_lt(n_test=0)


def test_read_idx_bad(tmp_path):
    (tmp_path / 'x').write_bytes(b'\x01\x02\x03\x04\x05')
    with pytest.raises(ValueError, match='not an IDX file'): read_idx(tmp_path / 'x')


def test_digits_class_order_random_is_seeded():
    a, b = digits_lt(class_order='random', seed=1, device='cpu'), digits_lt(class_order='random', seed=1, device='cpu')
    c = digits_lt(class_order='random', seed=2, device='cpu')
    assert a.class_counts == b.class_counts != c.class_counts
    assert sorted(a.class_counts) == sorted(long_tail_counts(124, 10, 10))


# ---------------------------------------------------------------- properties of the augmentation
@settings(max_examples=60, deadline=None)
@given(st.integers(1, 5), st.integers(1, 3), st.integers(1, 6), st.integers(1, 6), st.integers(0, 3), st.integers(0, 2**31 - 1))
def test_pad_crop_flip_matches_slicing(B, C, H, W, pad, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (B, C, H, W), dtype=torch.uint8, generator=g)
    oy, ox = torch.randint(0, 2 * pad + 1, (B,), generator=g), torch.randint(0, 2 * pad + 1, (B,), generator=g)
    fl = torch.rand(B, generator=g) < 0.5
    xp = F.pad(x, (pad,) * 4)
    ref = torch.stack([xp[i, :, oy[i]:oy[i] + H, ox[i]:ox[i] + W] for i in range(B)])
    ref = torch.where(fl.view(B, 1, 1, 1), ref.flip(-1), ref)
    assert torch.equal(pad_crop_flip(x, pad, oy, ox, fl), ref)
    assert torch.equal(pad_crop_flip(x.float(), pad, oy, ox, fl), ref.float())


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 3), st.integers(0, 3), st.integers(0, 3), st.booleans(), st.integers(0, 2**31 - 1))
def test_fused_fetch_gives_crops(C, store_pad, aug_pad, flip, seed):
    np.random.seed(seed)
    x = torch.randint(0, 256, (12, C, 5, 4), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))
    rows = _ImageRows(x, store_pad, n_mirror=8)
    idx = torch.tensor([0, 11, 3, 3, 7, 9, 8, 1])
    out = rows.batch(idx, PadCropFlip(aug_pad, flip))
    for o, i in zip(out, idx.tolist()):
        xp = F.pad(x[i], (aug_pad,) * 4)
        cands = [xp[:, a:a + 5, b:b + 4] for a in range(2 * aug_pad + 1) for b in range(2 * aug_pad + 1)]
        assert any(torch.equal(o, c) or (flip and torch.equal(o, c.flip(-1))) for c in cands)
    assert torch.equal(rows.batch(idx), x[idx])
    assert torch.equal(rows(5), x[5])


def test_offsets_and_flips_are_uniform():
    np.random.seed(0)
    x = torch.zeros(1, 1, 3, 3, dtype=torch.uint8)
    x[0, 0, 0, 0] = 1           # a marker at the top-left pixel: where it lands tells the crop offset and the flip
    rows = _ImageRows(x, 1, n_mirror=1)
    n = 18000
    out = rows.batch(torch.zeros(n, dtype=torch.long), PadCropFlip(1)).flatten(1)
    vis = out.amax(1) > 0
    pos = out[vis].argmax(1)
    r, c = pos // 3, pos % 3
    # the marker stays in 4 of the 9 crops, in rows 0-1; column 1 when ox = 0, else column 0, or 2 when mirrored
    assert abs(vis.float().mean().item() - 4 / 9) < 0.02
    assert (r <= 1).all() and abs((r == 0).float().mean().item() - 0.5) < 0.03
    for col, p in ((0, 0.25), (1, 0.5), (2, 0.25)): assert abs((c == col).float().mean().item() - p) < 0.03
