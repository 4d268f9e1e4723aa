"""Portfolio firmware-state report and test records."""
