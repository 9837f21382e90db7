"""sysbox-py: a system-container runtime.

Kept import-free: `sysbox-runc state` and `kill` import this package on every call.
"""

__version__ = "0.1.0"
