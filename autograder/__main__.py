import sys

try:
    from autograder.cli import main
except KeyboardInterrupt:  # Ctrl-C while torch is still importing: no traceback
    sys.exit(130)

sys.exit(main())
