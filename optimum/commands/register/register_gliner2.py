"""Loaded by `optimum-cli` at start-up (PEP 420 namespace `optimum.commands.register`).

Importing optimum_gliner2 is cheap and torch-free: GLiNER2 support registers itself with Optimum's
TasksManager only when an export command imports the exporters, so `optimum-cli --help` stays fast.
"""

import optimum_gliner2  # noqa: F401

REGISTER_COMMANDS = []
