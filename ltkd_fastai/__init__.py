__version__ = "0.1.0"
# Importing the package registers the CIFAR model zoo with timm, so that
# `timm.create_model('resnet8x4', num_classes=100)` works after `import ltkd_fastai`.
from . import models as _models  # noqa: F401,E402
