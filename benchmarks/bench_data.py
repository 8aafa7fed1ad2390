"""Throughput of the in-memory training DataLoader of `ltkd_fastai.data` against a plain PyTorch DataLoader.

Both loaders read the same uint8 tensors (the long-tailed training images and their labels) in shuffled
batches of `--bs`. Rates are batches per second over whole epochs (at least 60 batches), measured in interleaved
repeats, median reported. Rows:

- `fastai dls.train`: what training sees: batch fetch, PadCropFlip augmentation, uint8 -> float, Normalize;
- `fastai, no augmentation`: the same loader without PadCropFlip (fetch, float conversion, Normalize);
- `torch DataLoader (raw)`: `torch.utils.data.DataLoader(TensorDataset(x, y), shuffle=True, drop_last=True)`,
  yielding raw uint8 batches (no augmentation, no normalisation);
- `torch DataLoader + same tfms`: the plain loader followed by the same batch transforms (`PadCropFlip` on the
  fetched batch, `ByteNormalize`), run single-threaded like `ArrayDL`'s: the same work.

The ratio column is each row's rate over the raw torch DataLoader's rate.

    python benchmarks/bench_data.py [--repeats 5] [--bs 128] [--threads N]
"""
import argparse, statistics, time
from contextlib import contextmanager
import numpy as np
import torch
from torch.utils.data import DataLoader as TorchDL, TensorDataset
from fastai.data.transforms import Pipeline
from ltkd_fastai.data import arrays_lt, digits_lt, fashion_mnist_lt, find_fashion_mnist, CIFAR_STATS


def epoch_rate(dl, max_batches=None, min_batches=60):
    "Batches per second over whole epochs of `dl` (at least `min_batches`), or its first `max_batches`"
    n, t = 0, time.perf_counter()
    while True:
        for _ in dl:
            n += 1
            if max_batches and n >= max_batches: return n / (time.perf_counter() - t)
        if n >= min_batches: return n / (time.perf_counter() - t)


def train_tensors(dls):
    "The uint8 images and labels of the training split (the tensors both loaders read)"
    ds = dls.train_ds
    x = torch.stack([ds.tls[0][i] for i in range(len(ds))]).as_subclass(torch.Tensor)
    y = torch.stack([ds.tls[1][i] for i in range(len(ds))]).as_subclass(torch.Tensor)
    return x.contiguous(), y.contiguous()   # plain tensors: no fastai tensor-subclass overhead in the torch loader


class TorchPlusTfms:
    "A plain torch DataLoader whose batches go through `tfms` (a fastai Pipeline) on the training split"
    def __init__(self, tdl, tfms): self.tdl, self.tfms = tdl, tfms
    def __iter__(self):
        from fastai.torch_core import TensorImage, TensorCategory
        for x, y in self.tdl:
            with one_thread(): b = self.tfms((TensorImage(x), TensorCategory(y)))
            yield b


@contextmanager
def one_thread():
    "Run the batch transforms single-threaded, as `ArrayDL` does"
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try: yield
    finally: torch.set_num_threads(n)


def bench(name, dls, bs, repeats):
    x, y = train_tensors(dls)
    train = dls.train.new(bs=bs)
    no_aug = train.new(before_batch=[])
    tdl = TorchDL(TensorDataset(x, y), batch_size=bs, shuffle=True, drop_last=True)
    loaders = {'fastai dls.train': train, 'fastai, no augmentation': no_aug,
               'torch DataLoader (raw)': tdl, 'torch DataLoader + same tfms': TorchPlusTfms(tdl, Pipeline(list(train.before_batch.fs) + list(train.after_batch.fs), split_idx=0))}
    for dl in loaders.values(): epoch_rate(dl, 3)       # warm-up
    rates = {k: [] for k in loaders}
    for _ in range(repeats):                           # interleaved: load changes hit every loader alike
        for k, dl in loaders.items(): rates[k].append(epoch_rate(dl))
    med = {k: statistics.median(v) for k, v in rates.items()}
    ref = med['torch DataLoader (raw)']
    print(f"\n{name}: {len(x)} training images {tuple(x.shape[1:])}, bs={bs}, {len(train)} batches/epoch, "
          f"{repeats} interleaved repeats, torch threads={torch.get_num_threads()}")
    print(f"  {'loader':32s} {'batches/s':>10s} {'ratio':>7s}")
    for k, v in med.items(): print(f"  {k:32s} {v:10.1f} {v/ref:7.2f}")
    return med['fastai dls.train'] / ref


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--repeats', type=int, default=5)
    p.add_argument('--bs', type=int, default=128)
    p.add_argument('--threads', type=int, default=None, help='torch.set_num_threads (default: torch default)')
    a = p.parse_args()
    if a.threads: torch.set_num_threads(a.threads)
    # CIFAR-100-LT, gamma=100: 10,847 training images of 3 x 32 x 32 (random pixels: no download needed)
    rng = np.random.RandomState(0)
    y_tr = np.repeat(np.arange(100), 500)
    x_tr = rng.randint(0, 256, (50000, 3, 32, 32), dtype=np.uint8)
    y_te = np.repeat(np.arange(100), 10); x_te = rng.randint(0, 256, (1000, 3, 32, 32), dtype=np.uint8)
    res = {}
    cifar = arrays_lt(x_tr, y_tr, x_te, y_te, imb_factor=100, stats=CIFAR_STATS[100], device='cpu')
    res['CIFAR-100-LT'] = bench('CIFAR-100-LT (gamma 100, synthetic pixels)', cifar, a.bs, a.repeats)
    try: fm = fashion_mnist_lt(100, path=find_fashion_mnist(download=False), device='cpu')
    except FileNotFoundError as e: print(f"\nFashion-MNIST skipped: {str(e).splitlines()[0]}")
    else: res['Fashion-MNIST-LT'] = bench('Fashion-MNIST-LT (gamma 100)', fm, a.bs, a.repeats)
    res['digits-LT'] = bench('digits-LT (gamma 10)', digits_lt(device='cpu'), 64, a.repeats)
    print('\nfastai dls.train / plain torch DataLoader: ' + ', '.join(f'{k} {v:.2f}x' for k, v in res.items()))


if __name__ == '__main__': main()
