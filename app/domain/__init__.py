"""The data layer: plain functions over a Redis connection. No Flask here."""
