#!/usr/bin/env sh
# Prints the path of a Python 3.13 interpreter (the Lambda runtime's version), or explains how
# to get one and fails. Looks at $PYTHON, python3.13 on PATH, pyenv, uv and the usual prefixes.
want="3.13"
is_wanted() {
  [ -n "$1" ] && "$1" -c "import sys; sys.exit(sys.version_info[:2] != (3, 13))" >/dev/null 2>&1
}
for candidate in "${PYTHON:-}" python3.13 python3 python; do
  if is_wanted "$candidate"; then command -v "$candidate"; exit 0; fi
done
if command -v pyenv >/dev/null 2>&1; then
  for candidate in "$(pyenv root)"/versions/3.13*/bin/python3.13; do
    if is_wanted "$candidate"; then echo "$candidate"; exit 0; fi
  done
fi
if command -v uv >/dev/null 2>&1; then
  candidate=$(uv python find "$want" 2>/dev/null)
  if is_wanted "$candidate"; then echo "$candidate"; exit 0; fi
fi
for candidate in /usr/local/bin/python3.13 /usr/bin/python3.13 /opt/homebrew/bin/python3.13; do
  if is_wanted "$candidate"; then echo "$candidate"; exit 0; fi
done
cat >&2 <<MSG
No Python $want found (the Lambda runtime of this project is python$want).
Install one, then run make again:
  pyenv install $want      or   uv python install $want      or   your OS package manager
Or point to it: make test PYTHON=/path/to/python$want
MSG
exit 1
