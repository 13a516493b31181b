import os
import sys

try:
    from autograder.cli import ExitCode, main
except KeyboardInterrupt:  # Ctrl-C while the command line is still importing: no traceback
    os._exit(130)

code = main()
if code == ExitCode.INTERRUPTED:
    # An interrupt that reached a half-finished import (torch) can make the interpreter's own shutdown
    # report "killed by SIGINT" instead of 130; what is done is already written, so leave at once.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
sys.exit(code)
