"""Loaded by `optimum-cli` at start-up (PEP 420 namespace `optimum.commands.register`).

Importing optimum_gliner2 is cheap and torch-free: GLiNER2 support registers itself with Optimum's
TasksManager only when the export command imports the exporters, so `optimum-cli --help` stays fast.
"""

import optimum_gliner2
from optimum_gliner2.optimum_glue import install_cli_error_reporting, install_onnxruntime_command_hooks

install_cli_error_reporting()
install_onnxruntime_command_hooks()

REGISTER_COMMANDS = []
