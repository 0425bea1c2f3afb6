"""Test and demo doubles that speak real protocols."""
