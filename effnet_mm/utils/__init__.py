from .checkpoint import load_checkpoint, save_checkpoint
from .setup_env import register_all_modules

__all__ = ['register_all_modules', 'save_checkpoint', 'load_checkpoint']
