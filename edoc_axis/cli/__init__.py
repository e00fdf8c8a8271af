"""The ``edoc-axis`` command line: one module per command area, all attached to one group.

Commands only parse arguments, load settings and call into the package. Exit codes:
0 ok, 1 failure, 2 usage, 65 invalid input, 69 broker unavailable, 78 configuration error.
"""

from edoc_axis.cli.admin import directory_group, doctor_command, init_command
from edoc_axis.cli.audit import audit_group
from edoc_axis.cli.base import main
from edoc_axis.cli.broker import broker_group
from edoc_axis.cli.dms import dms_group
from edoc_axis.cli.node import COMMANDS as NODE_COMMANDS
from edoc_axis.cli.packages import package_group, validate_command
from edoc_axis.cli.sandbox import sandbox_command
from edoc_axis.cli.trust import pki_group, sign_command, verify_command

main.add_command(validate_command)
main.add_command(audit_group)
main.add_command(broker_group)
main.add_command(dms_group)
main.add_command(package_group)
main.add_command(pki_group)
main.add_command(sandbox_command)
main.add_command(sign_command)
main.add_command(verify_command)
main.add_command(init_command)
main.add_command(directory_group)
main.add_command(doctor_command)
for command in NODE_COMMANDS:
    main.add_command(command)

__all__ = ["main"]
