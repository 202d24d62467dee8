"""Helpers shared by the BCQL client scripts in this directory."""


def expect(exc, f, *a):
    """f(*a) raises exc."""
    try:
        f(*a)
    except exc:
        return
    raise AssertionError(f"expected {exc.__name__}")
