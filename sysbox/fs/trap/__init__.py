"""Syscalls trapped in containers through seccomp user notification, one module per syscall."""
