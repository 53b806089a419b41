"""Callbacks: early stopping, checkpoints, learning-rate logging, progress, TensorBoard."""

from .base import Callback
from .checkpoint import ModelCheckpoint
from .early_stopping import EarlyStopping
from .lr_monitor import LearningRateMonitor
from .progress import ProgressBar
from .tensorboard import TensorBoardLogger

__all__ = [
    "Callback",
    "EarlyStopping",
    "LearningRateMonitor",
    "ModelCheckpoint",
    "ProgressBar",
    "TensorBoardLogger",
]
