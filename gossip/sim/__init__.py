"""The round simulator: every peer stacked on a leading axis, one jitted round (a driver)."""
