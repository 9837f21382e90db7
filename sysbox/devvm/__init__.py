"""`sysbox run|ps|exec|stop|rm`: system containers as dev VMs, with no Docker on the machine.

Images come from a docker-archive tarball or an OCI layout (skopeo copies, umoci unpacks),
networking from the standard CNI plugins, the container itself from sysbox-runc.  Every
container's record lives on disk (store.py), so the CLI can exit and come back.
"""
