"""Methods as plain torch functions and modules, importable without any UI."""
