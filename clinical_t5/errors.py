"""Exceptions that the command line turns into exit codes.

`UserError` is bad input or usage: the CLI prints its message as one line and
exits with status 2. Its message must name the file, row or value at fault and
say how to fix it. It must never contain note text, because notes carry PHI:
refer to rows by their id.
"""


class UserError(Exception):
  """Invalid input or usage that the user can fix; the CLI exits with status 2."""
