"""Figures on real loaders and models (the notebook tests them on synthetic arrays): the Agg backend, a
digits-LT teacher, saving to PNG, drawing into given axes, and properties of the teacher's group mass."""
import matplotlib
matplotlib.use('Agg')
import matplotlib.pyplot as plt
import numpy as np, pandas as pd, pytest, torch
from hypothesis import given, settings, strategies as st

from ltkd_fastai.data import digits_lt
from ltkd_fastai.longtail import class_groups
from ltkd_fastai.models import get_model
from ltkd_fastai.plots import (model_features, plot_class_counts, plot_group_accuracy, plot_group_mass,
                               plot_sweep, plot_tsne, teacher_group_mass)


@pytest.fixture(scope='module')
def dls():
    return digits_lt(imb_factor=10, bs=32, augment=False)


def test_group_mass_on_digits_loaders(dls):
    torch.manual_seed(0)
    model = get_model('cnn_tiny', 10, in_chans=1)
    groups = class_groups(dls.class_counts)
    lt = teacher_group_mass(model, dls.train, groups, n_batches=5)
    bal = teacher_group_mass(model, dls.valid, groups)
    assert lt.shape == (5, 3) and bal.shape[1] == 3
    np.testing.assert_allclose(lt.sum(1), 32, rtol=1e-5)          # each full batch carries 32 samples of mass 1
    assert len(bal) == len(dls.valid_ds) // 32                    # the incomplete last batch is skipped
    assert model.training                                          # the train/eval mode is restored
    ax = plot_group_mass(lt, bal)
    assert len(ax.lines) == 6


def test_features_and_tsne_on_digits(dls, tmp_path):
    torch.manual_seed(0)
    model = get_model('cnn_tiny', 10, in_chans=1)
    f, t = model_features(model, dls.valid, max_n=120)
    assert f.shape == (120, 32) and t.shape == (120,) and t.max() < 10
    fig, ax = plt.subplots()
    assert plot_tsne(f, t, class_groups(dls.class_counts), ax=ax, perplexity=10) is ax
    fig.savefig(tmp_path / 'tsne.png')
    assert (tmp_path / 'tsne.png').read_bytes()[:4] == b'\x89PNG'
    plt.close('all')


def test_plots_draw_into_given_axes():
    fig, axs = plt.subplots(2, 2)
    acc = pd.DataFrame({'Head': [1., 2], 'Tail': [3., 4]}, index=['KD', 'LTKD'])
    assert plot_group_accuracy(acc, ax=axs[0, 0]) is axs[0, 0]
    assert plot_class_counts([5, 3, 1], [0, 1, 2], ax=axs[0, 1]) is axs[0, 1]
    df = pd.DataFrame({'n_groups': [2, 3, 5], 'all': [1., 2, 3]})
    assert plot_sweep(df, 'n_groups', ax=axs[1, 0], logx=True) is axs[1, 0]
    assert axs[1, 0].get_xscale() == 'log'
    assert plot_group_mass(np.ones((3, 3)), ax=axs[1, 1]) is axs[1, 1]
    plt.close('all')


@settings(max_examples=25, deadline=None)
@given(st.integers(2, 12), st.integers(1, 4), st.integers(1, 9), st.floats(0.25, 8))
def test_group_mass_properties(C, G, bs, T):
    "Rows sum to the batch size, and the mass of a group is the mass of its classes, whatever the grouping"
    G = min(G, C)
    torch.manual_seed(C * 100 + G)
    lin = torch.nn.Linear(3, C)
    x = torch.randn(bs * 3, 3)
    dl = [(x[i:i + bs], None) for i in range(0, len(x), bs)]
    groups = torch.arange(C) % G
    m = teacher_group_mass(lin, dl, groups, T=T)
    np.testing.assert_allclose(m.sum(1), bs, rtol=1e-5)
    per_class = teacher_group_mass(lin, dl, torch.arange(C), T=T)           # one group per class
    ref = np.stack([per_class[:, (groups == g).numpy()].sum(1) for g in range(G)], 1)
    np.testing.assert_allclose(m, ref, rtol=1e-5, atol=1e-6)
