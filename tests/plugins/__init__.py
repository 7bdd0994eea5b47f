"""Small drop-in subjects used by the tests, importable as ``tests.plugins.<module>:<attr>``."""
