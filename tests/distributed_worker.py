"""One process of the two-process gloo runs of `tests/test_distributed.py` (launched by `torchrun --nproc_per_node 2`).

    python -m torch.distributed.run --nproc_per_node 2 tests/distributed_worker.py OUT_DIR

Reads `OUT_DIR/inputs.pt` (made by the test) and writes what each rank saw to `OUT_DIR/rank{r}.pt`. It runs, in order:

- `ltkd_loss` on the rank's half of a batch, for several settings, with `sync=True` (the default) and `sync=False`;
- `distill_learner` fits through fastai's `learn.distrib_ctx()` (DDP via accelerate on CPU, gloo): one whose metrics
  cover a validation set of odd size (fastai pads the shares), followed by `group_report` in the same context, one single-step fit of a student without batch norm
  per `sync` setting (its update is compared with one step on the whole batch), and last, in their own learners,
  the passes over the whole training set (`cache_teacher=True`, `group_stats='dataset'`), whose outcome is recorded
  whether they train or fail.

`make_dls`, `teacher_model` and the students are imported by the test to rebuild the same data and models.
"""
import os, sys, traceback, warnings
from functools import partial
from pathlib import Path

import torch
import torch.nn as nn

N_CLASSES, BS, VAL_BS, N_VALID = 10, 32, 16, 75
COUNTS = [16, 12, 9, 7, 6, 5, 3, 3, 2, 1]          # 64 training images: one batch of BS=32 per rank and epoch


def make_dls(seed=0, bs=BS):
    "Learnable long-tailed 3x8x8 uint8 images (a class prototype plus noise); a balanced validation set of odd size"
    from ltkd_fastai.data import arrays_lt
    g = torch.Generator().manual_seed(seed)
    protos = torch.randn(N_CLASSES, 3, 8, 8, generator=g)
    y = torch.repeat_interleave(torch.arange(N_CLASSES), torch.tensor(COUNTS))
    yv = torch.arange(N_VALID) % N_CLASSES
    def images(lab): return (128 + 50 * protos[lab] + 20 * torch.randn(len(lab), 3, 8, 8, generator=g)).clamp(0, 255).to(torch.uint8)
    return arrays_lt(images(y), y, images(yv), yv, imb_factor=None, bs=bs, val_bs=VAL_BS, augment=False,
                     stats=([0.5] * 3, [0.25] * 3), device='cpu')


def teacher_model(seed=1):
    from ltkd_fastai.models import get_model
    torch.manual_seed(seed)
    return get_model('cnn_tiny', N_CLASSES)


def bn_student(seed=2):
    from ltkd_fastai.models import get_model
    torch.manual_seed(seed)
    return get_model('cnn_tiny', N_CLASSES)


def linear_student(seed=3):
    "A student without batch norm: one DDP step then equals one step on the concatenated batch exactly"
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, N_CLASSES))


def state(m): return {k: v.detach().clone() for k, v in m.state_dict().items()}


def main(out):
    import torch.distributed as dist
    torch.set_num_threads(1)
    warnings.filterwarnings('ignore')
    dist.init_process_group('gloo')
    rank, world = dist.get_rank(), dist.get_world_size()
    res = dict(rank=rank, world=world)

    # ---- ltkd_loss on this rank's half of each batch
    from ltkd_fastai.losses import ltkd_loss
    inp = torch.load(out / 'inputs.pt')
    res['loss'] = {}
    for name, (s, t, groups, kw) in inp['loss_cases'].items():
        half = len(s) // world
        for sync in (True, False):
            x = s[half * rank:half * (rank + 1)].clone().requires_grad_()
            l = ltkd_loss(x, t[half * rank:half * (rank + 1)], groups, sync=sync, **kw); l.backward()
            res['loss'][name, sync] = (l.detach(), x.grad)

    # ---- fits through fastai's distributed path
    from fastai.callback.core import Callback
    from fastai.callback.progress import ProgressCallback
    from fastai.distributed import DistributedDL
    from fastai.optimizer import SGD
    from fastai.torch_core import set_seed
    from torch.nn.parallel import DistributedDataParallel
    from ltkd_fastai.distill import distill_learner
    from ltkd_fastai.metrics import group_report
    import ltkd_fastai.distributed  # gloo-friendly index broadcasts for fastai's DistributedDL

    class Spy(Callback):
        "Records each training batch and what the student and teacher are during the fit"
        order = 30
        def before_fit(self): self.batches, self.seen = [], {}
        def after_pred(self):
            if not self.training: return
            d = self.learn.distill
            self.batches.append((self.x.as_subclass(torch.Tensor).clone(), self.y.as_subclass(torch.Tensor).clone()))
            self.seen.update(student_ddp=isinstance(self.learn.model, DistributedDataParallel),
                             teacher_ddp=isinstance(d.teacher, DistributedDataParallel),
                             teacher_in_model=any(m is d.teacher for m in self.learn.model.modules()),
                             teacher_training=d.teacher.training,
                             teacher_grad=any(p.requires_grad for p in d.teacher.parameters()),
                             dls_distributed=isinstance(self.learn.dl, DistributedDL))

    def fit(student, epochs=3, lr=1e-2, bs=8, inside=None, **kw):
        "`epochs` of `distill_learner(..., 'ltkd')` under `learn.distrib_ctx()`, then `inside(learn)` there too"
        set_seed(0)
        learn = distill_learner(make_dls(bs=bs), teacher_model(), student, 'ltkd', cbs=Spy(), **kw)
        learn.remove_cb(ProgressCallback)
        w0 = state(learn.model)
        with learn.distrib_ctx(sync_bn=False, cpu=True):  # no GPU: accelerate's CPU processes, no SyncBatchNorm
            learn.fit(epochs, lr)
            # what the fit recorded, before `inside` (get_preds runs `before_fit` again, which resets the records)
            learn.values, learn.seen, learn.batches = list(learn.recorder.values[-1]), dict(learn.spy.seen), list(learn.spy.batches)
            learn.inside = inside(learn) if inside else None
        return learn, w0

    learn, _ = fit(bn_student(), inside=group_report)   # the report as the tutorial makes it, on every process
    res['metrics'] = dict(report=learn.inside, names=list(learn.recorder.metric_names), values=learn.values,
                          student=state(learn.model), seen=learn.seen,
                          teacher=state(learn.distill.teacher), teacher0=state(teacher_model()))
    res['step'] = {}
    for sync in (True, False):
        learn, w0 = fit(linear_student(), epochs=1, lr=0.05, bs=BS, opt_func=SGD, sync=sync)
        res['step'][sync] = dict(w0=w0, w1=state(learn.model), batches=learn.batches, seen=learn.seen)

    # ---- passes over the whole training set: last, each in its own learner (a failed fit leaves fastai's wrapping)
    res['whole'] = {}
    for name, kw in (('cache', dict(cache_teacher=True)), ('dataset', dict(group_stats='dataset'))):
        try:
            learn, w0 = fit(bn_student(), **kw)
            res['whole'][name] = dict(ok=True, student=state(learn.model), values=learn.values)
        except Exception as e:
            res['whole'][name] = dict(ok=False, error=f'{type(e).__name__}: {e}', tb=traceback.format_exc())

    torch.save(res, out / f'rank{rank}.pt')
    dist.barrier()
    dist.destroy_process_group()


if __name__ == '__main__':
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main(Path(sys.argv[1]))
