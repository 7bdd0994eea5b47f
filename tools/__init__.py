"""Developer tools run from a clone (``nox -s bench``, ``nox -s golden``); not part of the installed optspec."""
