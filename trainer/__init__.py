"""trainer: config-driven PyTorch experiments.

Importing the package is cheap (no torch): the CLI's --help and --cfg stay fast. The public
names below are loaded on first use.
"""

__version__ = "0.1.0"

_LAZY = {
    "Trainer": ("trainer.loop", "Trainer"),
    "seed_everything": ("trainer.devices", "seed_everything"),
    "Callback": ("trainer.callbacks.base", "Callback"),
    "DataModule": ("trainer.data.module", "DataModule"),
    "ArrayData": ("trainer.data.arrays", "ArrayData"),
    "UserError": ("trainer.errors", "UserError"),
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name):
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'trainer' has no attribute {name!r}")
