"""Game packages. Importing this module imports every sub-package found in this folder, and each
registers its variants with `selflab.envs.registry.register` on import. A game that fails to
import is logged (and listed in `FAILED`) so one broken game never hides the others."""

from __future__ import annotations

import importlib
import logging
import pkgutil

log = logging.getLogger(__name__)

FAILED: dict[str, str] = {}
"""Game package name -> the import error, for `selflab games` to show."""

for _info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
    if not _info.ispkg or _info.name.startswith("_"):
        continue
    try:
        importlib.import_module(f"{__name__}.{_info.name}")
    except Exception as _err:  # noqa: BLE001 - a broken game must not break the others
        FAILED[_info.name] = f"{type(_err).__name__}: {_err}"
        log.warning("selflab.envs: game %r failed to import: %s", _info.name, _err)
