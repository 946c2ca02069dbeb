import datetime
import importlib
import warnings

from mmengine import DefaultScope

from effnet_mm.registry import SCOPE

#: Modules whose import registers every effnet_mm component.  Packages that do not exist yet are skipped.
_REGISTERING_MODULES = (
    'effnet_mm.models',
    'effnet_mm.datasets',
    'effnet_mm.datasets.transforms',
    'effnet_mm.engine',
    'effnet_mm.evaluation',
)


def register_all_modules(init_default_scope: bool = True) -> None:
    """Import every module that registers components and optionally make ``effnet_mm`` the default scope.

    Like ``mmpretrain.utils.register_all_modules``; calling it is optional because the registries import their
    ``locations`` lazily, but it makes the registries complete for listing and for dotted-string ``type`` lookups.

    Args:
        init_default_scope: if True, set the global default scope to ``'effnet_mm'`` (a new uniquely-named scope
            instance is created when another scope is current, as mmpretrain does).
    """
    for name in _REGISTERING_MODULES:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as err:
            if err.name != name:
                raise
    if not init_default_scope:
        return
    current = DefaultScope.get_current_instance()
    if current is None or not DefaultScope.check_instance_created(SCOPE):
        DefaultScope.get_instance(SCOPE, scope_name=SCOPE)
    elif current.scope_name != SCOPE:
        warnings.warn(f'The current default scope "{current.scope_name}" is not "{SCOPE}"; '
                      f'register_all_modules creates a new default scope for "{SCOPE}".',
                      stacklevel=2)
        stamp = datetime.datetime.now().strftime('%Y%m%d-%H%M%S-%f')
        DefaultScope.get_instance(f'{SCOPE}-{stamp}', scope_name=SCOPE)
