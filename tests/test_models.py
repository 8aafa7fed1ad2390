"""Fresh-process checks of the model zoo's timm registration (the notebook defines the zoo in its own
namespace, so it cannot see what `import ltkd_fastai` does in a clean interpreter)."""
import json, subprocess, sys, textwrap

from ltkd_fastai.models import ZOO


def _run(code):
    "Run `code` in a fresh interpreter and return its last stdout line parsed as JSON"
    res = subprocess.run([sys.executable, '-c', textwrap.dedent(code)], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_zoo_names_do_not_collide_with_timm():
    "None of the zoo names is a model of stock timm (that is why resnet18/resnet50/vgg*/mobilenetv2 get `_cifar`)"
    taken = _run(f"""
        import json, timm
        print(json.dumps([n for n in {list(ZOO)!r} if timm.is_model(n)]))
    """)
    assert taken == []


def test_import_registers_zoo_silently():
    "`import ltkd_fastai` registers every zoo name with timm, and importing/reloading warns about nothing"
    out = _run("""
        import json, warnings, importlib
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter('always')
            import ltkd_fastai, timm
            import ltkd_fastai.models as models
            importlib.reload(models)
            importlib.reload(models)
        overwrites = [str(w.message) for w in caught if 'registry' in str(w.message) or 'Overwriting' in str(w.message)]
        m = timm.create_model('resnet8x4', num_classes=100)
        print(json.dumps(dict(
            overwrites=overwrites,
            registered=[n for n in models.ZOO if not timm.is_model(n)],
            module=timm.models.model_entrypoint('resnet8x4').__module__,
            params=sum(p.numel() for p in m.parameters()),
            zoo_size=len(models.ZOO))))
    """)
    assert out['overwrites'] == []
    assert out['registered'] == []
    assert out['module'] == 'ltkd_fastai.models'
    assert out['params'] == 1_233_540  # mdistiller's resnet8x4 on CIFAR-100
    assert out['zoo_size'] == len(ZOO)
