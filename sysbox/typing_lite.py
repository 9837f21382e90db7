"""`TYPE_CHECKING` without importing `typing` (~4 ms at every sysbox-runc start).

Modules on sysbox-runc's create path import their typing names under `if TYPE_CHECKING:`;
with `from __future__ import annotations` the annotations are never evaluated at run time, and
type checkers treat a module-level `TYPE_CHECKING = False` the way they treat typing's.
"""

TYPE_CHECKING = False
