"""Pipeline definition: named settings (configs) and component wiring."""
