"""The `bench` command: one module per noun, loaded only when that command runs."""
