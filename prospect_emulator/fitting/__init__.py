"""Running fits: derived quantities, the bundled demo and catalogue fits."""
