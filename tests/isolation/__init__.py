"""Adversarial isolation: people never see, change or erase each other's memory (whole-store scans)."""
