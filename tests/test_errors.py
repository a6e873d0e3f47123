"""User-facing errors: optional packages name the extra that installs them."""

import pytest

from gossip.errors import ConfigError, optional_import


def test_optional_import_returns_the_module():
    assert optional_import("json", "none", "a test").dumps([1]) == "[1]"


def test_a_missing_optional_package_names_its_extra():
    with pytest.raises(ConfigError, match=r"dataset 'x' needs the package 'no_such_pkg', which "
                                          r"is not installed: pip install 'gossip-train\[extra\]'"):
        optional_import("no_such_pkg.sub", "extra", "dataset 'x'")
