"""Deployment files (systemd units, nginx) and their loopback launcher (run_local.py)."""
