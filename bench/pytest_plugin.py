"""pytest plugin of the bench: rig options, fixtures and the `mp207` marker."""
