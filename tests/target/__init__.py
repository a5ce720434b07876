# Makes tests/target a package so its conftest imports as target.conftest and does not
# shadow tests/conftest.py (both would be the module "conftest"). Not MicroPython code.
