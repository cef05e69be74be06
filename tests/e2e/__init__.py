"""Test package (unique module names across tiers: tests.unit.x vs tests.integration.x)."""
